package wire

import "fmt"

// The lists inside messages.
//
// An entry list (Promise, Accept and ObserveEvent Entries) is
//
//	count  uvarint
//	count × entry:
//	  flags  byte     bit 0 NoOp, bit 1 Chosen; other bits must be 0
//	  slot   varint   Slot minus the previous entry's Slot (zigzag, mod 2^64)
//	  ballot varint   Ballot minus the previous entry's Ballot (zigzag, mod 2^64)
//	  value  bytes    uvarint length + bytes; absent for a NoOp entry
//
// The first entry's "previous" slot and ballot are a base given by the
// message (see each message's layout), so ascending slots and a shared ballot
// take one byte each. A slot list (Accept.Chosen) is a count followed by one
// such slot delta per element.

// Entry flag bits.
const (
	entryNoOp   = 1 << 0
	entryChosen = 1 << 1
	entryFlags  = entryNoOp | entryChosen
)

// minEntrySize is the fewest bytes an encoded entry takes: flags, slot delta
// and ballot delta of a NoOp entry.
const minEntrySize = 3

// entriesSize returns the encoded size of es, or an error if es breaks a
// limit or has a NoOp entry with a value.
func entriesSize(t Type, es []Entry, slot Slot, ballot Ballot) (int, error) {
	if len(es) > MaxEntries {
		return 0, tooLarge(t, "Entries", len(es), MaxEntries)
	}
	n := UvarintLen(uint64(len(es)))
	for i := range es {
		e := &es[i]
		n += 1 + VarintLen(int64(e.Slot-slot)) + VarintLen(int64(e.Ballot-ballot))
		slot, ballot = e.Slot, e.Ballot
		switch {
		case e.NoOp && len(e.Value) != 0:
			return 0, fmt.Errorf("%w: %v.Entries[%d] is a no-op with a %d-byte value", ErrMalformed, t, i, len(e.Value))
		case e.NoOp:
		case len(e.Value) > MaxValueSize:
			return 0, tooLarge(t, fmt.Sprintf("Entries[%d].Value", i), len(e.Value), MaxValueSize)
		default:
			n += BytesLen(len(e.Value))
		}
	}
	return n, nil
}

// appendEntries appends es, which entriesSize has checked.
func appendEntries(b []byte, es []Entry, slot Slot, ballot Ballot) []byte {
	b = AppendUvarint(b, uint64(len(es)))
	for i := range es {
		e := &es[i]
		var flags byte
		if e.NoOp {
			flags |= entryNoOp
		}
		if e.Chosen {
			flags |= entryChosen
		}
		b = append(b, flags)
		b = AppendVarint(b, int64(e.Slot-slot))
		b = AppendVarint(b, int64(e.Ballot-ballot))
		slot, ballot = e.Slot, e.Ballot
		if !e.NoOp {
			b = AppendBytes(b, e.Value)
		}
	}
	return b
}

// entries decodes an entry list. It makes two passes: the first checks the
// whole list and sums the value sizes without allocating (so malformed input
// costs no memory), the second fills the entries and copies the values into
// one new array shared by all of them (each value's capacity is its length,
// so appending to one never overwrites another).
func (d *Decoder) entries(slot Slot, ballot Ballot) []Entry {
	d.field = "Entries"
	n := d.Count(minEntrySize, MaxEntries)
	if n == 0 {
		return nil
	}
	start := d.off
	total := d.entryList(n, nil, nil, slot, ballot)
	if d.err != nil {
		return nil
	}
	end := d.off
	// Invariant: n <= len(d.data)/minEntrySize and total <= len(d.data),
	// so both allocations are bounded by the input's size.
	es := make([]Entry, n)
	var values []byte
	if total > 0 {
		values = make([]byte, 0, total)
	}
	d.off = start
	d.entryList(n, es, values, slot, ballot)
	if d.err != nil || d.off != end {
		panic("wire: second pass over entries disagrees with the first")
	}
	return es
}

// entryList reads n entries. With es nil it only checks them and returns the
// total size of their values; otherwise it stores them in es, appending
// their values to values, which has room for all of them.
func (d *Decoder) entryList(n int, es []Entry, values []byte, slot Slot, ballot Ballot) (total int) {
	for i := range n {
		var e Entry
		d.field = "flags"
		off := d.off
		flags := d.Byte()
		if flags&^entryFlags != 0 {
			d.fail(ErrMalformed, off, "unknown entry flags %#x", flags)
		}
		e.NoOp = flags&entryNoOp != 0
		e.Chosen = flags&entryChosen != 0
		d.field = "Slot"
		e.Slot = slot + Slot(d.Varint())
		d.field = "Ballot"
		e.Ballot = ballot + Ballot(d.Varint())
		slot, ballot = e.Slot, e.Ballot
		if !e.NoOp {
			d.field = "Value"
			if v := d.value(); len(v) > 0 {
				total += len(v)
				if es != nil {
					start := len(values)
					values = append(values, v...)
					e.Value = values[start:len(values):len(values)]
				}
			}
		}
		if d.err != nil {
			if err, ok := d.err.(*Error); ok {
				err.Field = fmt.Sprintf("Entries[%d].%s", i, err.Field)
			}
			return 0
		}
		if es != nil {
			es[i] = e
		}
	}
	return total
}

// value reads a length-prefixed value of at most MaxValueSize bytes,
// aliasing the input.
func (d *Decoder) value() []byte {
	off := d.off
	n := d.Uvarint()
	if d.err == nil && n > MaxValueSize {
		d.fail(ErrTooLarge, off, "value length %d, limit %d", n, MaxValueSize)
	}
	if d.err != nil {
		return nil
	}
	return d.Next(int(n))
}

// slotsSize returns the encoded size of a slot list.
func slotsSize(t Type, field string, slots []Slot, prev Slot) (int, error) {
	if len(slots) > MaxEntries {
		return 0, tooLarge(t, field, len(slots), MaxEntries)
	}
	n := UvarintLen(uint64(len(slots)))
	for _, s := range slots {
		n += VarintLen(int64(s - prev))
		prev = s
	}
	return n, nil
}

func appendSlots(b []byte, slots []Slot, prev Slot) []byte {
	b = AppendUvarint(b, uint64(len(slots)))
	for _, s := range slots {
		b = AppendVarint(b, int64(s-prev))
		prev = s
	}
	return b
}

// slots decodes a slot list.
func (d *Decoder) slots(prev Slot) []Slot {
	n := d.Count(1, MaxEntries)
	if n == 0 {
		return nil
	}
	slots := make([]Slot, n)
	for i := range slots {
		prev += Slot(d.Varint())
		slots[i] = prev
	}
	if d.err != nil {
		return nil
	}
	return slots
}
