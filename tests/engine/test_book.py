"""OrderBook: levels, FIFO queues, lazy best-price heaps, O(1) cancel with compaction, depth."""

from __future__ import annotations

import random

import pytest

from app.engine.book import L_QUEUE, O_LEVEL, O_REM, OrderBook, new_order


def test_levels_fifo_and_best_prices() -> None:
    book = OrderBook()
    a = new_order(1, "x", 1, 100, 5)
    b = new_order(2, "y", 1, 100, 7)
    c = new_order(3, "x", 1, 101, 1)
    d = new_order(4, "z", -1, 105, 2)
    for o in (a, b, c, d):
        book.add(o)
    assert (book.best_bid(), book.best_ask()) == (101, 105)
    assert book.level(1, 100) == (12, 2)
    assert [o[0] for o in book.orders_at(1, 100)] == [1, 2]
    assert book.depth(2) == ([(101, 1, 1), (100, 12, 2)], [(105, 2, 1)])
    assert a[O_LEVEL] is book.bids[100]
    book.remove(c)
    assert book.best_bid() == 100  # 101 left the heap lazily
    book.reduce(b, 3)
    assert book.level(1, 100) == (9, 2) and [o[0] for o in book.orders_at(1, 100)] == [1, 2]
    assert len(book) == 3 and book.resting_lots() == 11
    book.check()


def test_empty_book() -> None:
    book = OrderBook()
    assert book.best_bid() is None and book.best_ask() is None
    assert book.depth(5) == ([], []) and len(book) == 0
    assert book.level(-1, 10) == (0, 0) and book.orders_at(1, 10) == []


def test_cancel_is_o1_and_queues_are_compacted() -> None:
    book = OrderBook()
    orders = [new_order(i, "x", -1, 500, 1) for i in range(1, 10_001)]
    for o in orders:
        book.add(o)
    rng = random.Random(4)
    victims = orders[:]
    rng.shuffle(victims)
    for o in victims[:9_990]:
        book.remove(o)
    queue = book.asks[500][L_QUEUE]
    # Dead entries never outnumber live ones by more than the slack: memory follows live orders.
    assert len(queue) <= 2 * 10 + 8
    assert book.level(-1, 500) == (10, 10)
    assert sorted(o[0] for o in book.orders_at(-1, 500)) == sorted(o[0] for o in victims[9_990:])
    book.check()


def test_level_deleted_when_last_order_leaves_and_price_can_return() -> None:
    book = OrderBook()
    a = new_order(1, "x", 1, 100, 5)
    book.add(a)
    book.remove(a)
    assert a[O_REM] == 0 and 100 not in book.bids and book.best_bid() is None
    b = new_order(2, "x", 1, 100, 3)
    book.add(b)
    assert book.best_bid() == 100 and book.level(1, 100) == (3, 1)
    book.check()


def test_check_detects_a_crossed_book() -> None:
    book = OrderBook()
    book.add(new_order(1, "x", 1, 101, 1))
    book.add(new_order(2, "y", -1, 100, 1))
    with pytest.raises(AssertionError, match="crossed"):
        book.check()


def test_clear_returns_live_orders_in_priority_order() -> None:
    book = OrderBook()
    for i, (side, price) in enumerate([(1, 99), (1, 100), (-1, 103), (-1, 102), (1, 100)], start=1):
        book.add(new_order(i, "x", side, price, 1))
    assert [o[0] for o in book.clear()] == [2, 5, 1, 4, 3]
    assert len(book) == 0 and book.best_ask() is None
