"""Evidence from camera agents: a pre/post ring of frames, MP4 clips, annotated stills, privacy blur.

``config`` is pydantic only (a device config validates without numpy/OpenCV); the other modules need
the ``vision`` extra: ``buffer`` (the frame ring and the clip windows), ``clip`` (MP4 with OpenCV),
``privacy`` (zones and faces), ``still`` (the annotated frame), ``throw`` (the facade's drawing of a
throw), ``worker`` (turns a closed window into clip and still off the frame loop).
"""
