"""The row types of pipeline/rows.py and the tables of pipeline/schema.py say the same thing."""

import dataclasses

import pytest

from pipeline import schema
from pipeline.rows import ROW_TYPES, as_dict, reject


@pytest.mark.parametrize("table", sorted(schema.TABLES))
def test_each_row_type_has_its_tables_columns_in_order_with_their_nullability(table):
    fields = dataclasses.fields(ROW_TYPES[table])
    assert [f.name for f in fields] == schema.column_names(table)
    nullable = {name: null for name, _, _, null in schema.TABLES[table]}
    wrong = [f.name for f in fields if ("None" in str(f.type)) != nullable[f.name]]
    assert not wrong, f"{table}: nullable in one and not the other: {wrong}"


def test_every_table_has_a_row_type_and_rows_cannot_change():
    assert set(ROW_TYPES) == set(schema.TABLES)
    row = reject("file:///a.png", 2, "segment", "no template matches this page at 0x7f00deadbeef")
    assert row.message == "no template matches this page" and as_dict(row)["page"] == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.page = 3
