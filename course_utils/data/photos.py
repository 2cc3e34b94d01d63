"""A few photographs bundled inside scikit-image, for image-embedding demos.

The files ship in the scikit-image wheel (``skimage/data/``), so they load
offline in both profiles. They are read straight from that folder with PIL,
not through ``skimage.data``'s functions, because those fall back to
downloading with pooch when a file's hash does not match.

Photographs, with the licence stated in scikit-image 0.26's docstrings:

- ``astronaut``: Eileen Collins, NASA; public domain.
- ``cat``: Chelsea the cat (``chelsea.png``); CC0, Stefan van der Walt.
- ``coffee``: a cup of coffee; CC0, Rachel Michetti.
- ``rocket``: Falcon 9 launching DSCOVR, SpaceX; public domain.
- ``camera``: a man with a camera (grayscale); CC0, Lav Varshney.
- ``coins``: Greek coins from Pompeii (grayscale), Brooklyn Museum; no known copyright restrictions.
- ``hubble_deep_field``: Hubble eXtreme Deep Field, NASA; public domain.
"""

from pathlib import Path

#: Photo name -> file name inside scikit-image's data folder.
PHOTO_FILES = {
    "astronaut": "astronaut.png",
    "cat": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "camera": "camera.png",
    "coins": "coins.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
}


def skimage_data_dir() -> Path:
    """Return the folder of data files inside the installed scikit-image package."""
    import skimage.data

    return Path(skimage.data.__file__).parent


def load_sample_photos(names=None) -> dict:
    """Load bundled photographs as RGB PIL images.

    Args:
        names: Photo names from :data:`PHOTO_FILES`; None loads all seven.

    Returns:
        Dict name -> PIL image in mode ``"RGB"`` at the file's own size
        (width x height from 384 x 303 to 1000 x 872 pixels). Grayscale
        photos are converted to RGB, with three equal channels.

    Raises:
        ValueError: an unknown name.
        FileNotFoundError: a file is missing from the scikit-image install.
    """
    from PIL import Image

    names = list(PHOTO_FILES) if names is None else list(names)
    unknown = [n for n in names if n not in PHOTO_FILES]
    if unknown:
        raise ValueError(f"Unknown photo names {unknown}; choose from {', '.join(PHOTO_FILES)}.")
    folder = skimage_data_dir()
    photos = {}
    for name in names:
        path = folder / PHOTO_FILES[name]
        if not path.is_file():
            raise FileNotFoundError(
                f"The photo {name!r} should be at {path}, but that file is missing. Reinstall "
                f"scikit-image (`pip install --force-reinstall scikit-image`), whose wheel ships it."
            )
        with Image.open(path) as image:
            photos[name] = image.convert("RGB")
    return photos
