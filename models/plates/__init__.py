"""The licence-plate reader: synthetic vehicle crops, training, export and evaluation."""
