"""The Re3 towers, one module per family, each with its weight importer beside it.

| model.tower          | network                              | importer (weights)                       |
|----------------------|--------------------------------------|------------------------------------------|
| `caffenet`           | built in model.re3 (conv1-conv5)     | `caffenet_import` (Caffe NumPy dict)     |
| `efficientnet_lite0` | `efficientnet_lite` (ImageNet)       | `efficientnet_import` + `torch_legacy`   |
| `nanotrack_v2`       | `nanotrack` (tracking-pretrained)    | `nanotrack` (OpenCV's NanoTrack ONNX)    |
"""
