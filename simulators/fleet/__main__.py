from simulators.fleet.cli import main

main()
