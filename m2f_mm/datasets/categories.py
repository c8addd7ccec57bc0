"""Category tables of the datasets whose classes interleave things and
stuff, as the paper's code numbers them, and the things-first metainfo that
our head and MMDetection's panoptic pipeline expect.

Each table lists ``(category id, name, isthing)`` in the original's
contiguous order: row ``i`` is the ``i``-th row of the original classifier.
Facts come from facebookresearch/Mask2Former
(``mask2former/data/datasets/register_{ade20k,mapillary_vistas}_panoptic.py``)
and cityscapesscripts' ``labels.py`` (train ids 0..18, things 11..18).

Why things first: our head, its fusion and MMDetection's panoptic code take
labels ``< num_things`` as things. :func:`things_first_metainfo` lists the
classes things first, each with its dataset category id
(``category_ids``); :class:`m2f_mm.CocoPanopticDataset` and our metrics map
ids to labels through that list, and the checkpoint converter moves the
classifier's rows by :func:`things_first_order`. Predictions and metrics
are then in the dataset's own category ids.
"""
from typing import Dict, List, Sequence, Tuple

Category = Tuple[int, str, int]  # (dataset category id, name, isthing)

# cityscapesscripts: label id, name, hasInstances; in train-id order 0..18
CITYSCAPES_CATEGORIES = (
    (7, 'road', 0), (8, 'sidewalk', 0), (11, 'building', 0), (12, 'wall', 0),
    (13, 'fence', 0), (17, 'pole', 0), (19, 'traffic light', 0),
    (20, 'traffic sign', 0), (21, 'vegetation', 0), (22, 'terrain', 0), (23, 'sky', 0),
    (24, 'person', 1), (25, 'rider', 1), (26, 'car', 1), (27, 'truck', 1),
    (28, 'bus', 1), (31, 'train', 1), (32, 'motorcycle', 1), (33, 'bicycle', 1),
)

# ids 0..149 as the original's prepare_ade20k_pan_seg.py writes them (names
# verbatim, 'window ' with its space); 100 things
ADE20K_PANOPTIC_CATEGORIES = (
    (0, 'wall', 0), (1, 'building', 0), (2, 'sky', 0), (3, 'floor', 0), (4, 'tree', 0),
    (5, 'ceiling', 0), (6, 'road, route', 0), (7, 'bed', 1), (8, 'window ', 1),
    (9, 'grass', 0), (10, 'cabinet', 1), (11, 'sidewalk, pavement', 0),
    (12, 'person', 1), (13, 'earth, ground', 0), (14, 'door', 1), (15, 'table', 1),
    (16, 'mountain, mount', 0), (17, 'plant', 0), (18, 'curtain', 1), (19, 'chair', 1),
    (20, 'car', 1), (21, 'water', 0), (22, 'painting, picture', 1), (23, 'sofa', 1),
    (24, 'shelf', 1), (25, 'house', 0), (26, 'sea', 0), (27, 'mirror', 1),
    (28, 'rug', 0), (29, 'field', 0), (30, 'armchair', 1), (31, 'seat', 1),
    (32, 'fence', 1), (33, 'desk', 1), (34, 'rock, stone', 0),
    (35, 'wardrobe, closet, press', 1), (36, 'lamp', 1), (37, 'tub', 1),
    (38, 'rail', 1), (39, 'cushion', 1), (40, 'base, pedestal, stand', 0),
    (41, 'box', 1), (42, 'column, pillar', 1), (43, 'signboard, sign', 1),
    (44, 'chest of drawers, chest, bureau, dresser', 1), (45, 'counter', 1),
    (46, 'sand', 0), (47, 'sink', 1), (48, 'skyscraper', 0), (49, 'fireplace', 1),
    (50, 'refrigerator, icebox', 1), (51, 'grandstand, covered stand', 0),
    (52, 'path', 0), (53, 'stairs', 1), (54, 'runway', 0),
    (55, 'case, display case, showcase, vitrine', 1),
    (56, 'pool table, billiard table, snooker table', 1), (57, 'pillow', 1),
    (58, 'screen door, screen', 1), (59, 'stairway, staircase', 0), (60, 'river', 0),
    (61, 'bridge, span', 0), (62, 'bookcase', 1), (63, 'blind, screen', 0),
    (64, 'coffee table', 1),
    (65, 'toilet, can, commode, crapper, pot, potty, stool, throne', 1),
    (66, 'flower', 1), (67, 'book', 1), (68, 'hill', 0), (69, 'bench', 1),
    (70, 'countertop', 1), (71, 'stove', 1), (72, 'palm, palm tree', 1),
    (73, 'kitchen island', 1), (74, 'computer', 1), (75, 'swivel chair', 1),
    (76, 'boat', 1), (77, 'bar', 0), (78, 'arcade machine', 1),
    (79, 'hovel, hut, hutch, shack, shanty', 0), (80, 'bus', 1), (81, 'towel', 1),
    (82, 'light', 1), (83, 'truck', 1), (84, 'tower', 0), (85, 'chandelier', 1),
    (86, 'awning, sunshade, sunblind', 1), (87, 'street lamp', 1), (88, 'booth', 1),
    (89, 'tv', 1), (90, 'plane', 1), (91, 'dirt track', 0), (92, 'clothes', 1),
    (93, 'pole', 1), (94, 'land, ground, soil', 0),
    (95, 'bannister, banister, balustrade, balusters, handrail', 1),
    (96, 'escalator, moving staircase, moving stairway', 0),
    (97, 'ottoman, pouf, pouffe, puff, hassock', 1), (98, 'bottle', 1),
    (99, 'buffet, counter, sideboard', 0),
    (100, 'poster, posting, placard, notice, bill, card', 0), (101, 'stage', 0),
    (102, 'van', 1), (103, 'ship', 1), (104, 'fountain', 1),
    (105, 'conveyer belt, conveyor belt, conveyer, conveyor, transporter', 0),
    (106, 'canopy', 0), (107, 'washer, automatic washer, washing machine', 1),
    (108, 'plaything, toy', 1), (109, 'pool', 0), (110, 'stool', 1),
    (111, 'barrel, cask', 1), (112, 'basket, handbasket', 1), (113, 'falls', 0),
    (114, 'tent', 0), (115, 'bag', 1), (116, 'minibike, motorbike', 1),
    (117, 'cradle', 0), (118, 'oven', 1), (119, 'ball', 1),
    (120, 'food, solid food', 1), (121, 'step, stair', 1),
    (122, 'tank, storage tank', 0), (123, 'trade name', 1), (124, 'microwave', 1),
    (125, 'pot', 1), (126, 'animal', 1), (127, 'bicycle', 1), (128, 'lake', 0),
    (129, 'dishwasher', 1), (130, 'screen', 1), (131, 'blanket, cover', 0),
    (132, 'sculpture', 1), (133, 'hood, exhaust hood', 1), (134, 'sconce', 1),
    (135, 'vase', 1), (136, 'traffic light', 1), (137, 'tray', 1),
    (138, 'trash can', 1), (139, 'fan', 1), (140, 'pier', 0), (141, 'crt screen', 0),
    (142, 'plate', 1), (143, 'monitor', 1), (144, 'bulletin board', 1),
    (145, 'shower', 0), (146, 'radiator', 1), (147, 'glass, drinking glass', 1),
    (148, 'clock', 1), (149, 'flag', 1),
)

# Mapillary Vistas v1.2 as the original's panoptic registration lists them
# (ids 1..65; 37 things); the semantic task uses the same 65 in this order
# with label 65 ('Unlabeled') ignored
MAPILLARY_VISTAS_CATEGORIES = (
    (1, 'Bird', 1), (2, 'Ground Animal', 1), (3, 'Curb', 0), (4, 'Fence', 0),
    (5, 'Guard Rail', 0), (6, 'Barrier', 0), (7, 'Wall', 0), (8, 'Bike Lane', 0),
    (9, 'Crosswalk - Plain', 1), (10, 'Curb Cut', 0), (11, 'Parking', 0),
    (12, 'Pedestrian Area', 0), (13, 'Rail Track', 0), (14, 'Road', 0),
    (15, 'Service Lane', 0), (16, 'Sidewalk', 0), (17, 'Bridge', 0),
    (18, 'Building', 0), (19, 'Tunnel', 0), (20, 'Person', 1), (21, 'Bicyclist', 1),
    (22, 'Motorcyclist', 1), (23, 'Other Rider', 1),
    (24, 'Lane Marking - Crosswalk', 1), (25, 'Lane Marking - General', 0),
    (26, 'Mountain', 0), (27, 'Sand', 0), (28, 'Sky', 0), (29, 'Snow', 0),
    (30, 'Terrain', 0), (31, 'Vegetation', 0), (32, 'Water', 0), (33, 'Banner', 1),
    (34, 'Bench', 1), (35, 'Bike Rack', 1), (36, 'Billboard', 1),
    (37, 'Catch Basin', 1), (38, 'CCTV Camera', 1), (39, 'Fire Hydrant', 1),
    (40, 'Junction Box', 1), (41, 'Mailbox', 1), (42, 'Manhole', 1),
    (43, 'Phone Booth', 1), (44, 'Pothole', 0), (45, 'Street Light', 1),
    (46, 'Pole', 1), (47, 'Traffic Sign Frame', 1), (48, 'Utility Pole', 1),
    (49, 'Traffic Light', 1), (50, 'Traffic Sign (Back)', 1),
    (51, 'Traffic Sign (Front)', 1), (52, 'Trash Can', 1), (53, 'Bicycle', 1),
    (54, 'Boat', 1), (55, 'Bus', 1), (56, 'Car', 1), (57, 'Caravan', 1),
    (58, 'Motorcycle', 1), (59, 'On Rails', 0), (60, 'Other Vehicle', 1),
    (61, 'Trailer', 1), (62, 'Truck', 1), (63, 'Wheeled Slow', 1), (64, 'Car Mount', 0),
    (65, 'Ego Vehicle', 0),
)


def things_first_order(categories: Sequence[Category]) -> List[int]:
    """For each label of the things-first order, the original's row:
    the things in their original order, then the stuff."""
    return ([i for i, c in enumerate(categories) if c[2]]
            + [i for i, c in enumerate(categories) if not c[2]])


def things_first_metainfo(categories: Sequence[Category]) -> Dict[str, tuple]:
    """``classes`` things first, ``thing_classes``, ``stuff_classes`` and
    ``category_ids`` (label -> dataset category id) for
    :class:`m2f_mm.CocoPanopticDataset` and the panoptic metric."""
    ordered = [categories[i] for i in things_first_order(categories)]
    return dict(classes=tuple(c[1] for c in ordered),
                thing_classes=tuple(c[1] for c in ordered if c[2]),
                stuff_classes=tuple(c[1] for c in ordered if not c[2]),
                category_ids=tuple(c[0] for c in ordered))


#: dataset name (as the converter's --dataset says) -> its category table
INTERLEAVED = {
    'cityscapes-panoptic': CITYSCAPES_CATEGORIES,
    'ade20k-panoptic': ADE20K_PANOPTIC_CATEGORIES,
    'mapillary-panoptic': MAPILLARY_VISTAS_CATEGORIES,
}
