"""Segmentation: a registered page becomes fields, and each field MNIST-like 28x28 digit crops.

    segment.py    each template field cut from the upright page and split into digit crops (`cut_fields`)
    lines.py      no template: lines of handwriting become fields line01, line02, ...
    guides.py     a field's ink strength and mask, and its printed box lines taken out
    blobs.py      connected ink blobs and their geometry
    split.py      a field's ink -> digit regions (and alternative cuts for review)
    touching.py   where a blob that is two or more digits is cut
    strikeout.py  struck-through digits left out (a small model, data/strikeout.npz)
    normalize.py  one digit's ink -> the 28x28 uint8 crop the model reads
    field_pictures.py  each field's picture for a person, cut with it (kept as `crops` rows)
"""
