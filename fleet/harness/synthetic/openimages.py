"""A teacher-labelled OpenImages-MLPerf-format dataset for the synthetic RetinaNet.

Writes `ROOT/validation/data/<16 hex>.jpg` and `ROOT/annotations/openimages-mlperf.json` with the
264 MLPerf categories (ids 0..263), images sorted by ImageID with 1-based ids and their true
sizes, and annotations that are the given fp32 model's own detections: each image goes
through the harness's preprocessing, the model, the harness's payload encoder and the accuracy
script's payload decoding, so a correct harness reproduces them and scores mAP 100%.

The images are noisy gradients with coloured shapes of many sizes (edges are what the synthetic
model fires on, noise keeps scores free of ties), one grey JPEG, and one flat image that yields
no detection. The generator refuses a dataset that could not catch a misordered harness: the
labels must be varied, and the detections of image i scored as image i+1 must lose most of
the mAP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from fleet.harness.accuracy.openimages import coco_map, records_to_coco
from fleet.harness.tasks.openimages import ANNOTATIONS_FILE, IMAGES_DIR, load_image
from fleet.harness.tasks.retinanet_io import OUTPUT_NAMES, decode_payload, make_feed, response_payload

# The 264 classes of `tools/openimages_mlperf.sh`, in order: category id i is MLPERF_CLASSES[i].
MLPERF_CLASSES: tuple[str, ...] = (
    "Airplane",
    "Antelope",
    "Apple",
    "Backpack",
    "Balloon",
    "Banana",
    "Barrel",
    "Baseball bat",
    "Baseball glove",
    "Bee",
    "Beer",
    "Bench",
    "Bicycle",
    "Bicycle helmet",
    "Bicycle wheel",
    "Billboard",
    "Book",
    "Bookcase",
    "Boot",
    "Bottle",
    "Bowl",
    "Bowling equipment",
    "Box",
    "Boy",
    "Brassiere",
    "Bread",
    "Broccoli",
    "Bronze sculpture",
    "Bull",
    "Bus",
    "Bust",
    "Butterfly",
    "Cabinetry",
    "Cake",
    "Camel",
    "Camera",
    "Candle",
    "Candy",
    "Cannon",
    "Canoe",
    "Carrot",
    "Cart",
    "Castle",
    "Cat",
    "Cattle",
    "Cello",
    "Chair",
    "Cheese",
    "Chest of drawers",
    "Chicken",
    "Christmas tree",
    "Coat",
    "Cocktail",
    "Coffee",
    "Coffee cup",
    "Coffee table",
    "Coin",
    "Common sunflower",
    "Computer keyboard",
    "Computer monitor",
    "Convenience store",
    "Cookie",
    "Countertop",
    "Cowboy hat",
    "Crab",
    "Crocodile",
    "Cucumber",
    "Cupboard",
    "Curtain",
    "Deer",
    "Desk",
    "Dinosaur",
    "Dog",
    "Doll",
    "Dolphin",
    "Door",
    "Dragonfly",
    "Drawer",
    "Dress",
    "Drum",
    "Duck",
    "Eagle",
    "Earrings",
    "Egg (Food)",
    "Elephant",
    "Falcon",
    "Fedora",
    "Flag",
    "Flowerpot",
    "Football",
    "Football helmet",
    "Fork",
    "Fountain",
    "French fries",
    "French horn",
    "Frog",
    "Giraffe",
    "Girl",
    "Glasses",
    "Goat",
    "Goggles",
    "Goldfish",
    "Gondola",
    "Goose",
    "Grape",
    "Grapefruit",
    "Guitar",
    "Hamburger",
    "Handbag",
    "Harbor seal",
    "Headphones",
    "Helicopter",
    "High heels",
    "Hiking equipment",
    "Horse",
    "House",
    "Houseplant",
    "Human arm",
    "Human beard",
    "Human body",
    "Human ear",
    "Human eye",
    "Human face",
    "Human foot",
    "Human hair",
    "Human hand",
    "Human head",
    "Human leg",
    "Human mouth",
    "Human nose",
    "Ice cream",
    "Jacket",
    "Jeans",
    "Jellyfish",
    "Juice",
    "Kitchen & dining room table",
    "Kite",
    "Lamp",
    "Lantern",
    "Laptop",
    "Lavender (Plant)",
    "Lemon",
    "Light bulb",
    "Lighthouse",
    "Lily",
    "Lion",
    "Lipstick",
    "Lizard",
    "Man",
    "Maple",
    "Microphone",
    "Mirror",
    "Mixing bowl",
    "Mobile phone",
    "Monkey",
    "Motorcycle",
    "Muffin",
    "Mug",
    "Mule",
    "Mushroom",
    "Musical keyboard",
    "Necklace",
    "Nightstand",
    "Office building",
    "Orange",
    "Owl",
    "Oyster",
    "Paddle",
    "Palm tree",
    "Parachute",
    "Parrot",
    "Pen",
    "Penguin",
    "Personal flotation device",
    "Piano",
    "Picture frame",
    "Pig",
    "Pillow",
    "Pizza",
    "Plate",
    "Platter",
    "Porch",
    "Poster",
    "Pumpkin",
    "Rabbit",
    "Rifle",
    "Roller skates",
    "Rose",
    "Salad",
    "Sandal",
    "Saucer",
    "Saxophone",
    "Scarf",
    "Sea lion",
    "Sea turtle",
    "Sheep",
    "Shelf",
    "Shirt",
    "Shorts",
    "Shrimp",
    "Sink",
    "Skateboard",
    "Ski",
    "Skull",
    "Skyscraper",
    "Snake",
    "Sock",
    "Sofa bed",
    "Sparrow",
    "Spider",
    "Spoon",
    "Sports uniform",
    "Squirrel",
    "Stairs",
    "Stool",
    "Strawberry",
    "Street light",
    "Studio couch",
    "Suit",
    "Sun hat",
    "Sunglasses",
    "Surfboard",
    "Sushi",
    "Swan",
    "Swimming pool",
    "Swimwear",
    "Tank",
    "Tap",
    "Taxi",
    "Tea",
    "Teddy bear",
    "Television",
    "Tent",
    "Tie",
    "Tiger",
    "Tin can",
    "Tire",
    "Toilet",
    "Tomato",
    "Tortoise",
    "Tower",
    "Traffic light",
    "Train",
    "Tripod",
    "Truck",
    "Trumpet",
    "Umbrella",
    "Van",
    "Vase",
    "Vehicle registration plate",
    "Violin",
    "Wall clock",
    "Waste container",
    "Watch",
    "Whale",
    "Wheel",
    "Wheelchair",
    "Whiteboard",
    "Window",
    "Wine",
    "Wine glass",
    "Woman",
    "Zebra",
    "Zucchini",
)

# (height, width) of the generated images: landscape, portrait and square, none 800x800.
_SIZES = ((480, 640), (500, 333), (375, 500), (600, 800), (427, 640), (640, 480), (512, 512), (300, 450))
MIN_DISTINCT_LABELS = 8
MAX_SHIFTED_MAP = 0.5  # detections scored against the wrong image must lose at least half the mAP


@dataclass(frozen=True)
class OpenImagesSynthReport:
    root: Path
    images: int
    detections: int
    empty_images: int
    distinct_labels: int
    shifted_map: float  # AP@[.5:.95] when every image is scored with its neighbour's detections


def _noisy_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    if rng.random() < 0.5:
        t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(c0 * (1 - t) + c1 * t, (height, width, 3)).copy()
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(12, min(height, width) // 12), max(13, min(height, width) // 2)))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(img, (cx - size // 2, cy - size // 3), (cx + size // 2, cy + size // 3), colour, -1)
        elif kind == 1:
            cv2.circle(img, (cx, cy), size // 2, colour, -1)
        else:
            end = (cx + int(rng.integers(-size, size)), cy + int(rng.integers(-size, size)))
            cv2.line(img, (cx, cy), end, colour, max(3, size // 8))
    img += rng.normal(0.0, 6.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_images(data_dir: Path, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Write `count` JPEGs (the last flat, the one before grey) and return their COCO entries."""
    data_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    used: set[str] = set()
    for i in range(count):
        height, width = _SIZES[i % len(_SIZES)]
        image_id = rng.bytes(8).hex()
        while image_id in used:
            image_id = rng.bytes(8).hex()
        used.add(image_id)
        if i == count - 1:
            pixels = np.empty((height, width, 3), np.uint8)
            pixels[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        else:
            pixels = _noisy_image(rng, height, width)
            if i == count - 2:
                pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(data_dir / f"{image_id}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])
        entries.append(
            {
                "file_name": f"{image_id}.jpg",
                "height": height,
                "width": width,
                "license": None,
                "coco_url": None,
            }
        )
    entries.sort(key=lambda e: e["file_name"])
    return [{"id": n + 1, **e} for n, e in enumerate(entries)]


def teacher_detections(
    session: ort.InferenceSession, data_dir: Path, images: list[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """Per image, the detections a correct harness reports (COCO dicts in original pixels)."""
    out = []
    for idx, image in enumerate(images):
        outputs = session.run(list(OUTPUT_NAMES), make_feed(load_image(data_dir / image["file_name"])))
        records = decode_payload(response_payload(idx, outputs))
        out.append(records_to_coco(records, image))
    return out


def _annotations(per_image: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    anns = []
    for dets in per_image:
        for det in dets:
            x, y, w, h = det["bbox"]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": det["image_id"],
                    "category_id": det["category_id"],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "IsOccluded": 0,
                    "IsInside": 0,
                    "IsDepiction": 0,
                    "IsTruncated": 0,
                    "IsGroupOf": 0,
                }
            )
    return anns


def check_diversity(coco: dict[str, Any], per_image: list[list[dict[str, Any]]]) -> float:
    """Refuse labels that cannot tell a misordered harness from a correct one.

    Returns the mAP of the neighbour-shifted detections (which must stay below MAX_SHIFTED_MAP).
    """
    images = coco["images"]
    empty = sum(1 for dets in per_image if not dets)
    if empty == 0:
        raise ValueError("degenerate synthetic OpenImages: no image without detections")
    if len(per_image) - empty < max(2, len(per_image) // 2):
        raise ValueError(
            f"degenerate synthetic OpenImages: only {len(per_image) - empty} of "
            f"{len(per_image)} images have detections"
        )
    labels = {a["category_id"] for a in coco["annotations"]}
    if len(labels) < MIN_DISTINCT_LABELS:
        raise ValueError(
            f"degenerate synthetic OpenImages: only {len(labels)} distinct labels "
            f"(need {MIN_DISTINCT_LABELS})"
        )
    tops = {tuple(sorted(d["category_id"] for d in dets[:5])) for dets in per_image if dets}
    if len(tops) < len(per_image) - empty:
        raise ValueError("degenerate synthetic OpenImages: two images share their top detections")
    shifted = []
    for idx, image in enumerate(images):
        for det in per_image[(idx + 1) % len(images)]:
            shifted.append({**det, "image_id": image["id"]})
    shifted_map, _ = coco_map(coco, shifted, [im["id"] for im in images])
    if shifted_map > MAX_SHIFTED_MAP:
        raise ValueError(
            f"degenerate synthetic OpenImages: misordered detections still score mAP {shifted_map:.3f}"
        )
    return shifted_map


def write_openimages(
    root: Path, model_path: Path, *, num_images: int = 8, seed: int = 0
) -> OpenImagesSynthReport:
    """Generate images, label them with the model at `model_path`, write the official layout."""
    if num_images < 4:
        raise ValueError("a synthetic OpenImages set needs at least 4 images (one flat, one grey)")
    root = Path(root)
    rng = np.random.default_rng(seed)
    data_dir = root / IMAGES_DIR
    images = _write_images(data_dir, num_images, rng)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    per_image = teacher_detections(session, data_dir, images)
    coco = {
        "info": {"dataset": "openimages_mlperf", "version": "v6", "synthetic": True},
        "licenses": [],
        "categories": [
            {"id": i, "name": name, "supercategory": None} for i, name in enumerate(MLPERF_CLASSES)
        ],
        "images": images,
        "annotations": _annotations(per_image),
    }
    shifted_map = check_diversity(coco, per_image)
    path = root / ANNOTATIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco), encoding="utf-8")
    return OpenImagesSynthReport(
        root=root,
        images=len(images),
        detections=len(coco["annotations"]),
        empty_images=sum(1 for d in per_image if not d),
        distinct_labels=len({a["category_id"] for a in coco["annotations"]}),
        shifted_map=shifted_map,
    )
