"""BM25 keyword ranking (``chat.lexical``), without a database."""

from __future__ import annotations

from chat.lexical import TermIndex

ROWS = [
    (1, "Model 3 dimensions. Ground clearance 5.5 in (140 mm)."),
    (2, "Model 3 can tow a trailer. Model 3 towing requires the tow package."),
    (3, "Park Assist may not detect a curb below 8 inches. Model 3 warns you."),
    (4, "Clean Model 3 with a pressure washer from 12 inches away."),
]


def test_the_rare_term_that_names_the_subject_ranks_its_chunk_first():
    index = TermIndex.from_texts(ROWS)
    # "model" is in every chunk and weighs nothing against "clearance", which is in one.
    assert index.search(["model", "ground", "clearanc"], 4)[0] == 1
    assert index.search(["pressur", "washer"], 4)[0] == 4


def test_only_chunks_holding_a_query_term_are_returned_best_first_up_to_the_limit():
    index = TermIndex.from_texts(ROWS)
    assert index.search(["tow"], 4) == [2]
    assert index.search(["unknownword"], 4) == []
    assert len(index.search(["model"], 2)) == 2


def test_a_term_repeated_in_the_query_counts_once_and_ties_go_by_id():
    index = TermIndex.from_texts([(7, "wiper blade"), (5, "wiper blade")])
    assert index.search(["wiper", "wiper"], 4) == [5, 7]


def test_an_empty_index_finds_nothing():
    assert TermIndex.from_texts([]).search(["wiper"], 4) == []
