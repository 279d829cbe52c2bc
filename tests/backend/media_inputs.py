"""Media inputs made here, never downloaded: printed text rendered with Pillow, and word error rates."""

from __future__ import annotations

import io
import random
import re

#: sentences of 2-45 s of speech for the round trip (Piper speaks, Whisper reads back)
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please send the quarterly report to the finance team before Friday afternoon.",
    "Yesterday the museum opened a new exhibition about the history of ancient ships, and thousands "
    "of visitors came to see the models, the maps and the old tools that sailors once used to cross "
    "the ocean. The curator said that the collection took ten years to assemble.",
    "Good morning everyone, and welcome to the weekly planning meeting. First, the new office on the "
    "river will open in March, and each team should choose two people to help with the move. Second, "
    "the budget for the next quarter is ready, and we will spend more on training and less on travel. "
    "Third, the customer survey shows that people like the faster delivery, but they want clearer "
    "instructions and a better phone line. Finally, please remember that the library will close early "
    "on Friday, so return your books before lunch. If you have questions, write to me after the meeting, "
    "and I will answer them by the end of the week. One more thing: the car park behind the building "
    "will be painted next Tuesday, so please leave your car on the street that morning. The coffee "
    "machine on the third floor is fixed. Thank you for listening, and have a good day.",
)
PARAGRAPH = (
    "Invoice number 4521",
    "Total amount due: 318.75 dollars",
    "Payment within thirty days.",
)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (digits kept)."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's word count."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


def render_text(
    lines: tuple[str, ...] | list[str],
    *,
    size: int = 36,
    angle: float = 0.0,
    blur: float = 0.0,
    noise: int = 0,
    fmt: str = "PNG",
) -> bytes:
    """``lines`` printed black on white with Pillow's bundled font; optionally rotated, blurred, noisy."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font = ImageFont.load_default(size=size)
    pad, gap = size, size // 2
    width = max(int(font.getlength(line)) for line in lines) + 2 * pad
    height = len(lines) * (size + gap) + 2 * pad
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * (size + gap)), line, fill=0, font=font)
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        rng = random.Random(7)
        pixels = image.load()
        assert pixels is not None
        for _ in range(image.width * image.height // 50):
            x, y = rng.randrange(image.width), rng.randrange(image.height)
            pixels[x, y] = max(0, min(255, pixels[x, y] + rng.randint(-noise, noise)))
    out = io.BytesIO()
    image.convert("RGB").save(out, fmt)
    return out.getvalue()
