"""Readers of raw dataset layouts (annotation parsing and directory walking).

Readers are plain Python (no Beam) so that evaluation, tools and tests use
exactly the code the Beam jobs use:

  voc_xml    ImageNet VID / DET (PASCAL VOC style) XML files
  sequences  benchmark layouts: OTB, VOT, LaSOT, UAV123, GOT-10k
  alov       ALOV300++ (.ann files + imagedata++)
  vid        ImageNet VID walker (videos -> frames + XML)
  det        ImageNet DET walker (images + XML) and the object rules
  mnist      MNIST digits (IDX files or mnist.npz)
  fs         local paths via os, URLs (gs://, ...) via tf.io.gfile
"""
