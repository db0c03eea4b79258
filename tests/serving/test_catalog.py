"""The published list: read in order with its keys; a malformed or duplicated entry is refused
with the entry named."""

import pytest

from serving.catalog import PublishedTable, load_published_tables
from serving.publish import _pg_index_name


def test_the_list_is_read_in_order_with_keys_and_indexes(tmp_path):
    path = tmp_path / "list.toml"
    path.write_text(
        '[[table]]\nname = "marts.b"\nprimary_key = ["id"]\nindexes = [["person_id"], ["x", "y"]]'
        '\n[[table]]\nname = "ml.a"\n'
    )
    assert load_published_tables(path) == (
        PublishedTable("marts.b", ("id",), (("person_id",), ("x", "y"))),
        PublishedTable("ml.a"),
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[table]]\nname = "no_schema"\n', "no_schema"),
        ('[[table]]\nname = "marts.a"\nprimary = ["id"]\n', "primary"),
        ('[[table]]\nname = "marts.a"\n[[table]]\nname = "ml.a"\n', "same name"),
    ],
)
def test_a_malformed_list_is_refused_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "list.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_published_tables(path)


def test_index_names_fit_postgresql_and_stay_distinct():
    long = ("a_rather_long_column_name_for_an_index",)
    first = _pg_index_name("segment_membership_history", long)
    second = _pg_index_name("segment_membership_history", (*long, "another"))
    assert len(first.encode()) <= 63 and len(second.encode()) <= 63 and first != second
    assert _pg_index_name("sessions", ("person_id",)) == "sessions__person_id_idx"
