"""Tracker evaluation, split the way benchmark toolkits (GOT-10k, pytracking) split it.

  datasets    the evaluation sequence type and its loaders (benchmark folders through
              pipelines.readers.sequences, moving-MNIST track records)
  trackers    tracker factories: the Re3 / RL agent model, OpenCV baselines, peers, stay-put
  baselines   the comparison trackers behind the init/update interface
  peers       the peers NanoTrack v2 / v1 and VitTrack (OpenCV, ONNX files from
              --peer_models or RE3_PEER_MODELS): names, files, how to build them
  protocols   protocol runners (one pass, VOT supervised)
  metrics     per-frame and per-sequence scores, dataset summaries
  scoring     a tracker's runs -> its performance.json block
  experiment  run every tracker on every sequence, write boxes, performance.json, plots
  plots       benchmark figures (matplotlib)
  frames      frame sources of the track command: image folders, videos, image lists,
              benchmark sequence folders
  render      annotated GIF / MP4 writer
  cli         what the two command lines share (--help that exits 0)

The command lines are thin wrappers: `python -m train.evaluate` and `python -m train.track`.
"""
