"""One engine's member table, and its probe order, without per-engine copies of what
many engines share.

memberlist keeps a map of node states and a slice of the same states in probe order
(state.go ``nodeMap`` and ``nodes``), and shuffles the slice at every round. An engine
alone needs nothing smarter; a simulator running 10,000 engines that start from the same
converged membership would hold 10,000 copies of a 10,000-entry map and list (memory
quadratic in the cluster size) and shuffle each at start (quadratic time). So:

* :class:`MemberBase`: immutable member records that many tables share;
* :class:`MemberTable`: one engine's table, a mapping of name to record: an optional base
  plus a small overlay of what this engine changed (the records it replaced, the base
  members it forgot, the members it added). An engine without a base (the runtime, a
  cluster formed by joins) keeps everything in the overlay, one dict, as before;
* :class:`ProbeOrder`: memberlist's round-robin over a random order, drawn lazily (a
  sparse Fisher-Yates shuffle over the table's slots) instead of stored and reshuffled.

Slots: every entry has a slot number, its position in ``base names + added names``; the
probe order and random picks work on slots. A base member the table forgot keeps its slot
as a hole (skipped) so the shared base never changes.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView

from swimpy.core.member import Member, State

__all__ = ["MemberBase", "MemberTable", "ProbeOrder"]

#: Overlay value of a base member this table forgot (typed as a Member so the overlay is a
#: plain ``dict[str, Member]``; compared by identity, never read).
_GONE = Member("", "", 0, b"", 0, State.LEFT, 0.0, b"", b"")


class MemberBase:
    """Immutable member records that many :class:`MemberTable` objects may share.

    Build one from the records of a converged cluster and hand it to every engine's
    ``Engine.bootstrap_members``: the tables share the records and the base's index
    instead of each holding a copy. Each name may appear once.
    """

    __slots__ = ("names", "records")

    def __init__(self, records: Iterable[Member]) -> None:
        recs = list(records)
        by_name = {m.name: m for m in recs}
        if len(by_name) != len(recs):
            raise ValueError("a member name is listed twice in the base; list each member once")
        #: name -> record (never changed after construction)
        self.records: Mapping[str, Member] = by_name
        #: the names in slot order
        self.names: tuple[str, ...] = tuple(by_name)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.records.values())


_EMPTY_BASE = MemberBase(())


class MemberTable(Mapping[str, Member]):
    """One engine's table: name -> :class:`Member`, a shared :class:`MemberBase` under a
    per-engine overlay. Only :class:`~swimpy.core.members.Members` writes it
    (:meth:`set`, :meth:`reap`); everything else reads it as a mapping.

    Iteration order: base members first (in the base's order), then added members in the
    order they were added.
    """

    __slots__ = ("_base", "_base_names", "_base_records", "_extra", "_holes", "_over",
                 "size")

    def __init__(self) -> None:
        self._use_base(_EMPTY_BASE)
        #: this engine's own records: replacements of base records, added members, and
        #: _GONE for base members it forgot
        self._over: dict[str, Member] = {}
        #: names not in the base, in slot order (slot = len(base) + position)
        self._extra: list[str] = []
        #: entries (``len(table)``, read without a call on hot paths)
        self.size = 0
        #: base members this table forgot (_GONE entries of the overlay)
        self._holes = 0

    def _use_base(self, base: MemberBase) -> None:
        self._base = base
        self._base_records: Mapping[str, Member] = base.records
        self._base_names = base.names

    # ------------------------------------------------------------------ reading

    def get(self, name: str, default: Member | None = None) -> Member | None:  # type: ignore[override]
        m = self._over.get(name)
        if m is None:
            return self._base_records.get(name, default)
        return default if m is _GONE else m

    def __getitem__(self, name: str) -> Member:
        m = self.get(name)
        if m is None:
            raise KeyError(name)
        return m

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        return (m.name for m in self.iter_values())

    def values(self) -> ValuesView[Member]:
        return _Values(self)

    def items(self) -> ItemsView[str, Member]:
        return _Items(self)

    def iter_values(self) -> Iterator[Member]:
        """Every record, base members first, then added ones (see the class docstring)."""
        over = self._over
        if not self._holes:
            # the overlay's record where it has one, else the base's (a loop in C)
            yield from map(over.get, self._base_names, self._base_records.values())
        else:
            gone = _GONE
            for name, m in self._base_records.items():
                o = over.get(name)
                if o is None:
                    yield m
                elif o is not gone:
                    yield o
        for name in self._extra:
            yield over[name]

    def records(self) -> list[Member]:
        """``list(self.values())``, built in C when the table has no holes (push/pull
        sends the whole table)."""
        if self._holes:
            return list(self.iter_values())
        over = self._over
        out = list(map(over.get, self._base_names, self._base_records.values()))
        out += map(over.__getitem__, self._extra)
        return out

    def get_many(self, names: Iterable[str]) -> list[Member | None]:
        """``[self.get(name) for name in names]``, with the lookups done in C (push/pull
        merges look up every member of the sender's table)."""
        names = list(names)
        base = list(map(self._base_records.get, names))
        over = self._over
        if not over:
            return base
        gone = _GONE
        return [b if o is None else (None if o is gone else o)
                for o, b in zip(map(over.get, names), base, strict=True)]

    # ------------------------------------------------------------------ slots

    @property
    def slot_count(self) -> int:
        """Slots in use: the base's size plus the members added (holes included)."""
        return len(self._base_names) + len(self._extra)

    def at(self, slot: int) -> Member | None:
        """The record in ``slot``, or None for a hole (a base member this table forgot)."""
        names = self._base_names
        b = len(names)
        name = names[slot] if slot < b else self._extra[slot - b]
        m = self._over.get(name)
        if m is None:
            return self._base_records[name]
        return None if m is _GONE else m

    def in_base(self, name: str) -> bool:
        """Whether ``name`` has a slot in the base (present or a hole)."""
        return name in self._base_records

    def swap_slots(self, a: int, b: int) -> None:
        """Exchange two added members' slots (for :class:`ProbeOrder`)."""
        base = len(self._base_names)
        extra = self._extra
        extra[a - base], extra[b - base] = extra[b - base], extra[a - base]

    def k_random(self, k: int, ok: Callable[[Member], bool], rng: random.Random) -> list[Member]:
        """memberlist ``kRandomNodes``: up to ``k`` distinct members ``ok`` accepts, from
        at most 3 x slots random draws; [UPSTREAM v0.6.0] an exhaustive shuffle when the
        table has fewer than 3k members. Draws slots, so a hole (a base member this table
        forgot) is a miss, as an unsuitable member is."""
        n = self.size
        if k <= 0 or n == 0:
            return []
        out: list[Member] = []
        slots = self.slot_count
        if n < 3 * k:
            idx = list(range(slots))
            rng.shuffle(idx)
            for i in idx:
                m = self.at(i)
                if m is not None and ok(m):
                    out.append(m)
                    if len(out) >= k:
                        break
            return out
        # gossip picks 3 members every 200 ms: MemberTable.at and Random.randrange
        # inlined (randrange(n) is getrandbits(n.bit_length()) until below n)
        names = self._base_names
        nbase = len(names)
        over = self._over
        base = self._base_records
        extra = self._extra
        getrandbits = rng.getrandbits
        bits = slots.bit_length()
        seen: set[str] = set()
        for _ in range(3 * slots):
            r = getrandbits(bits)
            while r >= slots:
                r = getrandbits(bits)
            name = names[r] if r < nbase else extra[r - nbase]
            m = over.get(name)
            if m is None:
                m = base[name]
            elif m is _GONE:
                continue
            if name in seen or not ok(m):
                continue
            seen.add(name)
            out.append(m)
            if len(out) >= k:
                break
        return out

    # ------------------------------------------------------------------ writing

    def bootstrap(self, base: MemberBase, without: str) -> None:
        """Start from ``base`` (the table must be empty); ``without`` (our own name) is
        left out, as a hole if the base lists it."""
        if self.size or self._over:
            raise ValueError(
                "bootstrap_members: the table is not empty; call this once, before start()"
            )
        self._use_base(base)
        self.size = len(base)
        if without in base.records:
            self._over[without] = _GONE
            self._holes = 1
            self.size -= 1

    def set(self, m: Member) -> bool:
        """Store ``m`` under its name; True if the name is new to the table."""
        name = m.name
        over = self._over
        cur = over.get(name)
        over[name] = m
        if cur is None:
            if name in self._base_records:
                return False
            self._extra.append(name)
            self.size += 1
            return True
        if cur is _GONE:
            self._holes -= 1
            self.size += 1
            return True
        return False

    def reap(self, forget: Callable[[Member], bool]) -> list[str]:
        """Remove every record ``forget`` is true of; returns their names. Added members'
        slots are renumbered (only between probe rounds: see :meth:`ProbeOrder.restart`).
        When more than half of the base has been forgotten, the rest of it is copied into
        the overlay and the base dropped, so holes never outnumber members."""
        over = self._over
        gone = _GONE
        out: list[str] = []
        for name, m in self._base_records.items():
            o = over.get(name)
            if o is None:
                if forget(m):
                    over[name] = gone
                    out.append(name)
            elif o is not gone and forget(o):
                over[name] = gone
                out.append(name)
        self._holes += len(out)
        if self._extra:
            keep = []
            for name in self._extra:
                if forget(over[name]):
                    del over[name]
                    out.append(name)
                else:
                    keep.append(name)
            self._extra = keep
        self.size -= len(out)
        if 2 * self._holes > len(self._base_names):
            self._drop_base()
        return out

    def _drop_base(self) -> None:
        over = self._over
        live = list(self.iter_values())
        over.clear()
        self._extra = []
        self._use_base(_EMPTY_BASE)
        self._holes = 0
        for m in live:
            over[m.name] = m
            self._extra.append(m.name)


class _Values(ValuesView[Member]):
    __slots__ = ("_table",)

    def __init__(self, table: MemberTable) -> None:
        super().__init__(table)
        self._table = table

    def __iter__(self) -> Iterator[Member]:
        return self._table.iter_values()


class _Items(ItemsView[str, Member]):
    __slots__ = ("_table",)

    def __init__(self, table: MemberTable) -> None:
        super().__init__(table)
        self._table = table

    def __iter__(self) -> Iterator[tuple[str, Member]]:
        return ((m.name, m) for m in self._table.iter_values())


class ProbeOrder:
    """memberlist's probe order (state.go ``probe``, ``resetNodes``, ``aliveNode``): a
    round-robin over the table in a random order, a new order every round, a new member
    at a random position of the current round.

    No order is stored up front: each round is a Fisher-Yates shuffle of the slots done
    one step per probe, with the engine's random generator. The shuffle starts sparse
    (``_swaps`` holds only the positions an earlier step moved a slot to: at most the
    probes made this round, so a large cluster's members keep a few hundred entries over
    a simulated run of minutes) and turns dense (an array of 4-byte slots, half of
    memberlist's list of pointers) once the sparse form would be the larger; the random
    draws, and so the order, are the same either way.

    A member added mid-round joins the rest of the round with memberlist's odds:
    memberlist swaps it into a random index of its list, so it is probed this round if
    that index is not behind the probe index, at a random point of the rest of the
    round; here it joins the unshuffled rest with the same probability, which gives the
    same distribution (without memberlist's side effect of moving the member it swapped
    with to the end of the list, to be probed a second time that round if it had been
    probed already).
    """

    __slots__ = ("_dense", "_fixed", "_limit", "_pos", "_rng", "_swaps", "_table")

    def __init__(self, table: MemberTable, rng: random.Random) -> None:
        self._table = table
        self._rng = rng
        #: positions drawn this round; the round covers slots [0, _limit)
        self._pos = 0
        self._limit = 0
        #: sparse form: position -> the slot an earlier step moved there (positions >=
        #: _pos only; the others hold their own slot)
        self._swaps: dict[int, int] = {}
        #: dense form (or None): the slot at every position (those >= _pos are live)
        self._dense: array[int] | None = None
        #: set_round's names, last first (tests)
        self._fixed: list[str] = []

    def restart(self) -> None:
        """A new round over every slot of the table (memberlist ``resetNodes`` shuffles)."""
        self._pos = 0
        self._limit = self._table.slot_count
        self._swaps = {}
        self._dense = None
        self._fixed = []

    def added(self, name: str) -> None:
        """``name`` is new to the table (:meth:`MemberTable.set` returned True)."""
        table = self._table
        if table.in_base(name):
            # its slot is in the round already, at a uniformly random position
            return
        slot = table.slot_count - 1
        limit = self._limit
        if self._rng.randrange(limit + 1) < self._pos:
            return  # memberlist's random index fell behind the probe index: next round
        if slot != limit:
            # members added earlier that wait for the next round sit in between
            table.swap_slots(slot, limit)
        if self._dense is not None:
            self._dense.append(limit)
        self._limit = limit + 1

    def next(self) -> Member | None:
        """The next member of this round, or None when the round is over."""
        if self._fixed:
            return self._next_fixed()
        pos = self._pos
        limit = self._limit
        if pos >= limit:
            return None
        # one probe per member per second: MemberTable.at and Random.randrange inlined
        # (the same draws: randrange(n) is getrandbits(n.bit_length()) until below n)
        table = self._table
        names = table._base_names
        nbase = len(names)
        over = table._over
        swaps = self._swaps
        dense = self._dense
        getrandbits = self._rng.getrandbits
        while pos < limit:
            n = limit - pos
            k = n.bit_length()
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            j = pos + r
            if dense is not None:
                slot = dense[j]
                dense[j] = dense[pos]
            else:
                slot = swaps.get(j, j)
                if j != pos:
                    swaps[j] = swaps.pop(pos, pos)
                    if len(swaps) > limit >> 4:
                        # ~90 bytes an entry against 4 a slot: the array is smaller now
                        dense = self._densify(pos + 1)
                elif swaps:
                    swaps.pop(pos, None)
            pos += 1
            name = names[slot] if slot < nbase else table._extra[slot - nbase]
            m = over.get(name)
            if m is None:
                m = table._base_records[name]
            elif m is _GONE:
                continue
            self._pos = pos
            return m
        self._pos = pos
        return None

    def _densify(self, pos: int) -> array[int]:
        dense = array("I", range(self._limit))
        for p, slot in self._swaps.items():
            if p >= pos:
                dense[p] = slot
        self._swaps = {}
        self._dense = dense
        return dense

    def _next_fixed(self) -> Member | None:
        while self._fixed:
            m = self._table.get(self._fixed.pop())
            if m is not None:
                return m
        return self.next()

    def set_round(self, names: Sequence[str]) -> None:
        """The rest of this round visits exactly ``names``, in this order (tests: as
        memberlist's tests set ``m.nodes``; ``[]`` ends the round)."""
        self._pos = self._limit
        self._swaps = {}
        self._dense = None
        self._fixed = list(reversed(names))

    @property
    def drawn(self) -> int:
        """Positions of this round already drawn (holes and skipped members included)."""
        return self._pos

    @property
    def length(self) -> int:
        """Positions in this round."""
        return self._limit

    def pending_swaps(self) -> dict[int, int]:
        """The shuffle's state, sparse or dense: the positions not yet drawn whose slot is
        not their own (tests check its invariants)."""
        if self._dense is None:
            return dict(self._swaps)
        d = self._dense
        return {p: d[p] for p in range(self._pos, self._limit) if d[p] != p}
