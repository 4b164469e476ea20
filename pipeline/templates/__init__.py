"""Form templates: where each form's digit fields are.

    model.py    `Template` and `Field` as data, JSON I/O, field rules, the blank drawn from its fields
    lint.py     template files checked before a run: one line per problem
    propose.py  `formdigits template propose`: a template from a blank form, and its preview
    blank_fields.py  where digits go on a blank: empty cells, combs, boxes, lines to write on
"""
