"""Assembly: a page's predictions become table rows.

    assemble.py  digits -> a field's value and confidence, its rules (length, pattern, check digit) and
                 review flags -> `fields` and `digits` rows
    crops.py     the field pictures kept for review (`crops` rows, --keep-crops) and their object names
"""
