"""Reading: scanned files become pages, each decoded once, a page at a time.

    read.py     PNG, JPEG, multi-page TIFF and PDF -> `Page`s (grey, or colour when a page holds colour);
                sizes checked from headers before decoding; bitonal pages softened; what cannot be read is a
                `ReadError` naming why
    dropout.py  colour pages: the grey registration sees (darkest channel), a blank's print colour, and the
                page with a dropout-colour form's print taken out
"""
