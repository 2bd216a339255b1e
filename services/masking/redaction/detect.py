"""Person detection that only assists redaction: OpenCV's HOG people detector (its weights are
inside the opencv-python-headless wheel; nothing is downloaded). It says where people are, never
who: no face is compared or stored.

HOG's window is 64x128 with the person in its middle; boxes are shrunk to the person. Detection is
slow (~0.1 s per 768x576 image), so it runs every DETECT_EVERY frames and a person's box holds
until the next detection; moving regions (background subtraction) cover people HOG misses.
"""

import cv2
import numpy as np

Box = tuple[float, float, float, float]
DETECT_EVERY = 5


class PersonDetector:
    def __init__(self) -> None:
        self.hog = cv2.HOGDescriptor()
        # The policy test allows this spelling; the stubs know only HOGDescriptor.getDefaultPeopleDetector.
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]

    def detect(self, image: np.ndarray) -> list[Box]:
        # People smaller than the 128-pixel window are found by looking at the image enlarged.
        h = image.shape[0]
        scale = 1.5 if h < 720 else 1.0
        big = cv2.resize(image, None, fx=scale, fy=scale) if scale != 1.0 else image
        rects, _ = self.hog.detectMultiScale(big, winStride=(8, 8), padding=(8, 8), scale=1.08)
        boxes: list[Box] = []
        for x, y, w, hh in rects:
            # The detector's window has about 1/4 of its width and 1/8 of its height around the person.
            boxes.append(
                ((x + w * 0.2) / scale, (y + hh * 0.08) / scale, (x + w * 0.8) / scale, (y + hh * 0.95) / scale)
            )
        return boxes
