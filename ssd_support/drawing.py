"""The project's one box drawer: boxes, class names and scores on a copy of an image (detect.py's output images,
eval.py --plots' predictions/). Pillow only; no torch."""

from PIL import ImageDraw, ImageFont

# Distinct colours (the tutorial's palette), cycled through by label.
BOX_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#0082c8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
               "#d2f53c", "#fabebe", "#008080", "#000080", "#aa6e28", "#fffac8", "#800000", "#aaffc3",
               "#808000", "#ffd8b1", "#e6beff", "#808080")


def _text_colour(background):
    """Black or white, whichever reads better on a "#rrggbb" background (by its luma)."""
    red, green, blue = (int(background[i:i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "white"


def label_position(box_corner, label_size, image_size):
    """Where a box's label goes: above the box's top-left corner when there is room, inside the box otherwise,
    and moved left / up as far as needed to stay inside the image (a box at the right edge would cut it off).

    :param box_corner: (x1, y1) of the box in pixels
    :param label_size: (width, height) of the label's background in pixels, as given to Pillow's rectangle (which
        covers width + 1 by height + 1 pixels: both corners included)
    :param image_size: (width, height) of the image in pixels
    :return: (x, y) of the label's top-left pixel; a label wider (or taller) than the image starts at 0 and is cut
        on the right (bottom) only
    """
    (x1, y1), (label_width, label_height), (width, height) = box_corner, label_size, image_size
    y = y1 - label_height if y1 - label_height >= 0 else y1  # its last row on the box's top edge
    x = max(0, min(x1, width - 1 - label_width))
    y = max(0, min(y, height - 1 - label_height))
    return x, y


def draw_detections(image, detections, label_map=None, colour=None):
    """Draw boxes, class names and scores on a copy of an image.

    Uses Pillow's built-in default font, which exists on every system (no .ttf file to ship), and measures
    text with textbbox (font.getsize is gone since Pillow 10).

    :param image: a PIL RGB image
    :param detections: list of {"label", "score", "box"} in pixels of this image
    :param label_map: {class name: label}, only to give each class a stable colour
    :param colour: one "#rrggbb" colour for every box instead of one per class (eval.py --plots draws the ground
        truth in one colour and the detections in another); a "score" of None draws the class name alone
    :return: the annotated copy
    """
    annotated = image.copy()
    draw = ImageDraw.Draw(annotated)
    font = ImageFont.load_default()
    line_width = max(2, round(min(image.size) / 150))
    for detection in detections:
        x1, y1, x2, y2 = detection["box"]
        label_index = (label_map or {}).get(detection["label"], sum(map(ord, detection["label"])))
        box_colour = colour or BOX_COLOURS[label_index % len(BOX_COLOURS)]
        draw.rectangle([x1, y1, x2, y2], outline=box_colour, width=line_width)

        score = detection.get("score")
        text = detection["label"] if score is None else f"{detection['label']} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_width, text_height = right - left + 4, bottom - top + 4
        text_x, text_y = label_position((x1, y1), (text_width, text_height), image.size)
        # Pillow's rectangle includes both corners: text_width + 1 pixels wide, as label_position counts them.
        draw.rectangle([text_x, text_y, text_x + text_width, text_y + text_height], fill=box_colour)
        draw.text((text_x + 2 - left, text_y + 2 - top), text, fill=_text_colour(box_colour), font=font)
    return annotated
