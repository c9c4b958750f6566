"""Annotation checks run once, when a dataset is built, before any training step.

MMDetection's ``CocoDataset`` silently drops what it cannot use (unknown category ids, degenerate
boxes), silently shifts labels when a name in ``metainfo.classes`` is not in the json, and fails at
the first batch, deep in its loaders, on a missing ``segmentation``, an RLE of the wrong size or an
image whose size differs from the json. :func:`check_coco_instances` finds all of that up front; each
:class:`DataProblem` names the json, the image id (and file) and the annotation id.
"""
import difflib
import math
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set

__all__ = ['DataError', 'DataProblem', 'DataReport', 'check_coco_instances', 'check_coco_panoptic',
           'check_policy', 'drop_counts', 'log_skipped']


class DataError(ValueError):
    """Annotations or images that training cannot use (see :class:`DataProblem`)."""


@dataclass(frozen=True)
class DataProblem:
    """One problem: where it is (json, image, annotation, field) and what is wrong."""
    source: str
    kind: str  # short category for the counts, e.g. 'degenerate bbox'
    message: str
    image_id: Optional[int] = None
    ann_id: Optional[int] = None
    file_name: Optional[str] = None
    ann_word: str = 'annotation'  # 'segment' in panoptic files (ids unique per image only)

    def __str__(self) -> str:
        where = [self.source]
        if self.image_id is not None:
            where.append(f'image {self.image_id}' +
                         (f' ({self.file_name})' if self.file_name else ''))
        if self.ann_id is not None:
            where.append(f'{self.ann_word} {self.ann_id}')
        return f'{", ".join(where)}: {self.message}'


@dataclass
class DataReport:
    """Everything :func:`check_coco_instances` found, and what ``skip`` drops."""
    source: str
    problems: List[DataProblem] = field(default_factory=list)
    bad_images: Set[int] = field(default_factory=set)
    bad_annotations: Set[int] = field(default_factory=set)
    fatal: List[str] = field(default_factory=list)  # config problems no policy can skip

    def add(self, problem: DataProblem, image: bool = False) -> None:
        self.problems.append(problem)
        if image:
            self.bad_images.add(problem.image_id)
        elif problem.ann_word == 'segment':
            self.bad_annotations.add((problem.image_id, problem.ann_id))
        elif problem.ann_id is not None:
            self.bad_annotations.add(problem.ann_id)

    def summary(self) -> str:
        counts = Counter(p.kind for p in self.problems)
        return ', '.join(f'{n} {kind}' for kind, n in counts.most_common())

    def enforce(self, policy: str, limit: int = 20) -> None:
        """``'error'``: raise :class:`DataError` listing the problems; ``'skip'``: only fatal ones."""
        if self.fatal:
            raise DataError('\n  '.join([f'{self.source}:'] + self.fatal))
        if self.problems and policy == 'error':
            shown = [str(p) for p in self.problems[:limit]]
            more = len(self.problems) - len(shown)
            raise DataError(
                f'{len(self.problems)} data problem(s) ({self.summary()}):\n  ' +
                '\n  '.join(shown) + (f'\n  ... and {more} more' if more > 0 else '') +
                "\nFix the data, or set data_check='skip' in the dataset config to drop these "
                'annotations / images (the count is logged).')

    def filtered(self, coco: dict) -> dict:
        """A copy of the COCO dict without the bad images (and their annotations) and annotations."""
        images = [img for img in coco['images'] if img.get('id') not in self.bad_images]
        kept = {img['id'] for img in images}
        anns = [ann for ann in coco['annotations']
                if ann.get('id') not in self.bad_annotations and ann.get('image_id') in kept]
        return dict(coco, images=images, annotations=anns)


    def filtered_panoptic(self, coco: dict) -> dict:
        """A copy of a COCO panoptic dict without the bad images and segments."""
        images = [img for img in coco['images'] if img.get('id') not in self.bad_images]
        kept = {img['id'] for img in images}
        anns = []
        for ann in coco['annotations']:
            if ann.get('image_id') not in kept:
                continue
            segments = [seg for seg in ann['segments_info']
                        if (ann['image_id'], seg.get('id')) not in self.bad_annotations]
            anns.append(dict(ann, segments_info=segments))
        return dict(coco, images=images, annotations=anns)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _image_size_problem(path: str, width: int, height: int) -> Optional[str]:
    """Why the image file at ``path`` does not match the json (missing, unreadable, other size)."""
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(path):
        return f'image file {path} does not exist'
    try:
        with Image.open(path) as img:
            size = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError) as err:
        return f'image file {path} cannot be read ({err})'
    sizes = {size, size[::-1]} if orientation in (5, 6, 7, 8) else {size}  # EXIF-rotated
    if (width, height) not in sizes:
        return (f'the json says {width}x{height} (width x height), the file {path} is '
                f'{size[0]}x{size[1]}')
    return None


def _check_segmentation(seg, img: dict) -> Optional[str]:
    if isinstance(seg, dict):  # RLE
        size = seg.get('size')
        if 'counts' not in seg or not isinstance(size, (list, tuple)) or len(size) != 2:
            return f'segmentation RLE needs counts and size [height, width], got keys {sorted(seg)}'
        if list(size) != [img.get('height'), img.get('width')]:
            return (f'segmentation RLE size {list(size)} differs from the image size '
                    f"[{img.get('height')}, {img.get('width')}] (height, width)")
        return None
    if not isinstance(seg, list) or not seg:
        return f'segmentation must be polygons or an RLE, got {seg!r:.60}'
    for poly in seg:
        if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
            return 'segmentation polygon with non-numeric or non-finite coordinates'
        if len(poly) < 6 or len(poly) % 2:
            return (f'degenerate segmentation polygon with {len(poly)} coordinates (a polygon '
                    'needs at least 3 x, y points)')
    return None


def _check_bbox(bbox, img: dict) -> Optional[str]:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(map(_is_number, bbox)):
        return f'bbox must be 4 finite numbers [x, y, w, h], got {bbox!r:.60}'
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return f'degenerate bbox {list(bbox)}: width and height must be > 0'
    width, height = img.get('width'), img.get('height')
    if _is_number(width) and _is_number(height):
        if min(x + w, width) - max(x, 0) <= 0 or min(y + h, height) - max(y, 0) <= 0:
            return f'bbox {list(bbox)} lies outside the {width}x{height} image'
    return None


def _check_fields_category_box(entry: dict, required: Sequence[str], word: str,
                               category_ids: Set[int], img: dict, add) -> bool:
    """Required fields, a known category and a usable box; ``add(kind, message)`` each problem.

    Returns:
        bool: True when the entry passed.
    """
    missing = [k for k in required if k not in entry]
    if missing:
        add(f'{word} without required fields', f'{word} without {missing}')
    elif entry['category_id'] not in category_ids:
        add('unknown category_id', f"category_id {entry['category_id']} is not a category of the "
            f'json (known: {sorted(category_ids)[:20]})')
    else:
        problem = _check_bbox(entry['bbox'], img)
        if problem:
            add('degenerate bbox', problem)
        return problem is None
    return False


def _check_images_and_classes(coco: dict, report: DataReport, classes: Optional[Sequence[str]],
                              img_dir: Optional[str]) -> tuple:
    """The checks instance and panoptic files share; returns ``({id: image}, category ids)``."""
    source = report.source
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            report.fatal.append(f'missing list field {key!r}: not a COCO annotation file')
    if report.fatal:
        return {}, set()
    names = {c.get('name'): c.get('id') for c in coco['categories']}
    for name in classes or ():
        if name not in names:
            close = difflib.get_close_matches(str(name), [str(n) for n in names], n=1)
            report.fatal.append(
                f'metainfo.classes has {name!r}, which is not a category name of the json' +
                (f" (did you mean '{close[0]}'?)" if close else '') +
                '; MMDetection would drop it and shift the labels of the classes after it')
    images: Dict[int, dict] = {}
    for img in coco['images']:
        missing = [k for k in ('id', 'file_name', 'width', 'height') if k not in img]
        image_id = img.get('id')
        if missing:
            report.add(DataProblem(source, 'image without required fields',
                                   f'image entry without {missing}', image_id,
                                   file_name=img.get('file_name')), image=image_id is not None)
            continue
        images[image_id] = img
        if img_dir is not None:
            problem = _image_size_problem(osp.join(img_dir, img['file_name']), img['width'],
                                          img['height'])
            if problem:
                report.add(DataProblem(source, 'unreadable or mis-sized image', problem, image_id,
                                       file_name=img['file_name']), image=True)
    return images, set(names.values())


def check_coco_panoptic(coco: dict, source: str, classes: Optional[Sequence[str]] = None,
                        img_dir: Optional[str] = None,
                        seg_dir: Optional[str] = None) -> DataReport:
    """Check a COCO panoptic annotation dict (``segments_info`` per image, PNG label files).

    Args:
        coco (dict): The parsed json.
        source (str): The json's path, for messages.
        classes (Sequence[str], optional): ``metainfo.classes`` (things then stuff).
        img_dir (str, optional): Image folder (files checked as in :func:`check_coco_instances`).
        seg_dir (str, optional): Panoptic PNG folder: every PNG must exist with its image's size.

    Returns:
        DataReport: Problems; ``skip`` drops bad images and bad segments (keyed by image id and
        segment id, which is unique within an image only).
    """
    report = DataReport(source)
    images, category_ids = _check_images_and_classes(coco, report, classes, img_dir)
    if report.fatal:
        return report
    for ann in coco['annotations']:
        image_id = ann.get('image_id')
        img = images.get(image_id, {})
        if image_id in report.bad_images:
            continue
        missing = [k for k in ('image_id', 'file_name', 'segments_info') if k not in ann]
        if missing or image_id not in images:
            message = f'panoptic annotation without {missing}' if missing else \
                f'image_id {image_id} is not an image of the json'
            report.add(DataProblem(source, 'bad panoptic annotation', message, image_id,
                                   file_name=img.get('file_name')), image=image_id in images)
            continue
        if seg_dir is not None:
            problem = _image_size_problem(osp.join(seg_dir, ann['file_name']), img['width'],
                                          img['height'])
            if problem:
                report.add(DataProblem(source, 'unreadable or mis-sized panoptic PNG', problem,
                                       image_id, file_name=img['file_name']), image=True)
                continue
        for seg in ann['segments_info']:
            def add(kind: str, message: str) -> None:
                report.add(DataProblem(source, kind, message, image_id, seg.get('id'),
                                       img['file_name'], ann_word='segment'))

            if not _check_fields_category_box(seg, ('id', 'category_id', 'bbox', 'area'),
                                              'segment', category_ids, img, add):
                continue
            if not _is_number(seg['area']) or seg['area'] <= 0:
                add('degenerate segment', f"segment area {seg['area']} must be > 0")
    return report


def check_coco_instances(coco: dict, source: str, classes: Optional[Sequence[str]] = None,
                         img_dir: Optional[str] = None, with_mask: bool = True) -> DataReport:
    """Check a COCO instance annotation dict.

    Args:
        coco (dict): The parsed json (``images``, ``annotations``, ``categories``).
        source (str): The json's path, for messages.
        classes (Sequence[str], optional): ``metainfo.classes``; each must be a category name.
        img_dir (str, optional): Image folder; when given, every image file must exist, be readable
            and have the json's width and height (read from the file header only).
        with_mask (bool): Annotations must have a ``segmentation`` (instance segmentation).

    Returns:
        DataReport: The problems, and the image / annotation ids that ``skip`` drops.
    """
    report = DataReport(source)
    images, category_ids = _check_images_and_classes(coco, report, classes, img_dir)
    if report.fatal:
        return report
    required = ('id', 'image_id', 'category_id', 'bbox') + (('segmentation', ) if with_mask else ())
    for ann in coco['annotations']:
        ann_id, image_id = ann.get('id'), ann.get('image_id')
        img = images.get(image_id, {})

        def add(kind: str, message: str) -> None:
            report.add(DataProblem(source, kind, message, image_id, ann_id,
                                   img.get('file_name')))

        if image_id in report.bad_images:  # dropped with its image anyway
            continue
        if all(k in ann for k in required) and image_id not in images:
            add('unknown image_id', f'image_id {image_id} is not an image of the json')
            continue
        if not _check_fields_category_box(ann, required, 'annotation', category_ids, img, add):
            continue
        if with_mask or ann.get('segmentation'):
            problem = _check_segmentation(ann['segmentation'], img)
            if problem:
                add('bad segmentation', problem)
    return report


def log_skipped(report: DataReport, dropped: str) -> None:
    """The ``skip`` policy's log: the first problems, then what was dropped and why (counts)."""
    from mmengine.logging import print_log
    for problem in report.problems[:20]:
        print_log(f'data_check=skip: {problem}', logger='current', level=30)
    print_log(f'data_check=skip: dropped {dropped} of {report.source} ({report.summary()})',
              logger='current', level=30)


def check_policy(data_check: str) -> str:
    """``data_check`` itself, if it is ``'error'`` or ``'skip'``."""
    if data_check not in ('error', 'skip'):
        raise ValueError(f"data_check must be 'error' or 'skip', got {data_check!r}")
    return data_check


def drop_counts(report: DataReport) -> str:
    """``'2 annotations and 1 image'`` for the log line of the ``skip`` policy."""
    def plural(n: int, word: str) -> str:
        return f'{n} {word}{"" if n == 1 else "s"}'
    return (f'{plural(len(report.bad_annotations), "annotation")} and '
            f'{plural(len(report.bad_images), "image")}')

