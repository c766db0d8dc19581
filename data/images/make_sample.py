"""Make data/images/sample.png, the input of the ``pillow`` workload.

The image is drawn by Pillow itself (a Mandelbrot set and two gradients), so the
course ships no third-party picture and anyone can rebuild it:

    python data/images/make_sample.py
"""

from pathlib import Path

from PIL import Image, ImageOps

SIZE = (512, 512)


def make_sample() -> Image.Image:
    mandelbrot = Image.effect_mandelbrot(SIZE, (-2.2, -1.5, 0.8, 1.5), 96)
    radial = Image.radial_gradient("L").resize(SIZE)
    linear = Image.linear_gradient("L").resize(SIZE)
    return Image.merge("RGB", (mandelbrot, radial, ImageOps.invert(linear)))


if __name__ == "__main__":
    target = Path(__file__).with_name("sample.png")
    make_sample().save(target, optimize=True)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
