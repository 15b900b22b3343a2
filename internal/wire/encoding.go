package wire

import (
	"fmt"
	"slices"
)

// The binary encoding of each message: Version, the Type tag, then the fields
// below in order. "uvarint" is AppendUvarint, "bool" one byte 0 or 1, and
// "entries" and "slots" are the lists described in entries.go. Each
// AppendBinary grows b at most once (it computes the exact size first), so
// it does not allocate when cap(b)-len(b) is large enough, and on error
// returns b unchanged.
//
// Each UnmarshalBinary decodes into a new value and assigns it to the
// receiver only on success; it copies all values out of data (the input may
// be reused afterwards). Decoded lists and values that are empty are nil.

// Prepare: Ballot uvarint, From uvarint.

// WireType returns TypePrepare.
func (m *Prepare) WireType() Type { return TypePrepare }

func (m *Prepare) size() (int, error) {
	return headerLen + UvarintLen(uint64(m.Ballot)) + UvarintLen(uint64(m.From)), nil
}

// AppendBinary appends the encoding of m to b.
func (m *Prepare) AppendBinary(b []byte) ([]byte, error) {
	n, _ := m.size()
	b = slices.Grow(b, n)
	b = appendHeader(b, TypePrepare)
	b = AppendUvarint(b, uint64(m.Ballot))
	b = AppendUvarint(b, uint64(m.From))
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *Prepare) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one Prepare.
func (m *Prepare) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypePrepare)
	var v Prepare
	d.field = "Ballot"
	v.Ballot = Ballot(d.Uvarint())
	d.field = "From"
	v.From = Slot(d.Uvarint())
	if err := d.finish(TypePrepare); err != nil {
		return err
	}
	*m = v
	return nil
}

// Promise: OK bool, Promised uvarint, Forgotten uvarint, Next uvarint,
// Entries entries (base slot Forgotten, base ballot 0).

// WireType returns TypePromise.
func (m *Promise) WireType() Type { return TypePromise }

func (m *Promise) size() (int, error) {
	n, err := entriesSize(TypePromise, m.Entries, m.Forgotten, 0)
	if err != nil {
		return 0, err
	}
	return headerLen + 1 + UvarintLen(uint64(m.Promised)) + UvarintLen(uint64(m.Forgotten)) + UvarintLen(uint64(m.Next)) + n, nil
}

// AppendBinary appends the encoding of m to b.
func (m *Promise) AppendBinary(b []byte) ([]byte, error) {
	n, err := m.size()
	if err != nil {
		return b, err
	}
	b = slices.Grow(b, n)
	b = appendHeader(b, TypePromise)
	b = AppendBool(b, m.OK)
	b = AppendUvarint(b, uint64(m.Promised))
	b = AppendUvarint(b, uint64(m.Forgotten))
	b = AppendUvarint(b, uint64(m.Next))
	b = appendEntries(b, m.Entries, m.Forgotten, 0)
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *Promise) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one Promise.
func (m *Promise) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypePromise)
	var v Promise
	d.field = "OK"
	v.OK = d.Bool()
	d.field = "Promised"
	v.Promised = Ballot(d.Uvarint())
	d.field = "Forgotten"
	v.Forgotten = Slot(d.Uvarint())
	d.field = "Next"
	v.Next = Slot(d.Uvarint())
	v.Entries = d.entries(v.Forgotten, 0)
	if err := d.finish(TypePromise); err != nil {
		return err
	}
	*m = v
	return nil
}

// Accept: Ballot uvarint, Commit uvarint, Min uvarint, Done uvarint, Chosen
// slots (base Commit), Entries entries (base slot Commit, base ballot
// Ballot).

// WireType returns TypeAccept.
func (m *Accept) WireType() Type { return TypeAccept }

func (m *Accept) size() (int, error) {
	nc, err := slotsSize(TypeAccept, "Chosen", m.Chosen, m.Commit)
	if err != nil {
		return 0, err
	}
	ne, err := entriesSize(TypeAccept, m.Entries, m.Commit, m.Ballot)
	if err != nil {
		return 0, err
	}
	return headerLen + UvarintLen(uint64(m.Ballot)) + UvarintLen(uint64(m.Commit)) +
		UvarintLen(uint64(m.Min)) + UvarintLen(uint64(m.Done)) + nc + ne, nil
}

// AppendBinary appends the encoding of m to b.
func (m *Accept) AppendBinary(b []byte) ([]byte, error) {
	n, err := m.size()
	if err != nil {
		return b, err
	}
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeAccept)
	b = AppendUvarint(b, uint64(m.Ballot))
	b = AppendUvarint(b, uint64(m.Commit))
	b = AppendUvarint(b, uint64(m.Min))
	b = AppendUvarint(b, uint64(m.Done))
	b = appendSlots(b, m.Chosen, m.Commit)
	b = appendEntries(b, m.Entries, m.Commit, m.Ballot)
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *Accept) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one Accept.
func (m *Accept) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeAccept)
	var v Accept
	d.field = "Ballot"
	v.Ballot = Ballot(d.Uvarint())
	d.field = "Commit"
	v.Commit = Slot(d.Uvarint())
	d.field = "Min"
	v.Min = Slot(d.Uvarint())
	d.field = "Done"
	v.Done = Slot(d.Uvarint())
	d.field = "Chosen"
	v.Chosen = d.slots(v.Commit)
	v.Entries = d.entries(v.Commit, v.Ballot)
	if err := d.finish(TypeAccept); err != nil {
		return err
	}
	*m = v
	return nil
}

// Accepted: OK bool, Promised uvarint, Done uvarint.

// WireType returns TypeAccepted.
func (m *Accepted) WireType() Type { return TypeAccepted }

func (m *Accepted) size() (int, error) {
	return headerLen + 1 + UvarintLen(uint64(m.Promised)) + UvarintLen(uint64(m.Done)), nil
}

// AppendBinary appends the encoding of m to b.
func (m *Accepted) AppendBinary(b []byte) ([]byte, error) {
	n, _ := m.size()
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeAccepted)
	b = AppendBool(b, m.OK)
	b = AppendUvarint(b, uint64(m.Promised))
	b = AppendUvarint(b, uint64(m.Done))
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *Accepted) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one Accepted.
func (m *Accepted) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeAccepted)
	var v Accepted
	d.field = "OK"
	v.OK = d.Bool()
	d.field = "Promised"
	v.Promised = Ballot(d.Uvarint())
	d.field = "Done"
	v.Done = Slot(d.Uvarint())
	if err := d.finish(TypeAccepted); err != nil {
		return err
	}
	*m = v
	return nil
}

// ObserveRequest: From uvarint.

// WireType returns TypeObserveRequest.
func (m *ObserveRequest) WireType() Type { return TypeObserveRequest }

func (m *ObserveRequest) size() (int, error) {
	return headerLen + UvarintLen(uint64(m.From)), nil
}

// AppendBinary appends the encoding of m to b.
func (m *ObserveRequest) AppendBinary(b []byte) ([]byte, error) {
	n, _ := m.size()
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeObserveRequest)
	b = AppendUvarint(b, uint64(m.From))
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *ObserveRequest) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one ObserveRequest.
func (m *ObserveRequest) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeObserveRequest)
	var v ObserveRequest
	d.field = "From"
	v.From = Slot(d.Uvarint())
	if err := d.finish(TypeObserveRequest); err != nil {
		return err
	}
	*m = v
	return nil
}

// ObserveEvent: Commit uvarint, Forgotten uvarint, Entries entries (base
// slot Forgotten, base ballot 0).

// WireType returns TypeObserveEvent.
func (m *ObserveEvent) WireType() Type { return TypeObserveEvent }

func (m *ObserveEvent) size() (int, error) {
	n, err := entriesSize(TypeObserveEvent, m.Entries, m.Forgotten, 0)
	if err != nil {
		return 0, err
	}
	return headerLen + UvarintLen(uint64(m.Commit)) + UvarintLen(uint64(m.Forgotten)) + n, nil
}

// AppendBinary appends the encoding of m to b.
func (m *ObserveEvent) AppendBinary(b []byte) ([]byte, error) {
	n, err := m.size()
	if err != nil {
		return b, err
	}
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeObserveEvent)
	b = AppendUvarint(b, uint64(m.Commit))
	b = AppendUvarint(b, uint64(m.Forgotten))
	b = appendEntries(b, m.Entries, m.Forgotten, 0)
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *ObserveEvent) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one ObserveEvent.
func (m *ObserveEvent) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeObserveEvent)
	var v ObserveEvent
	d.field = "Commit"
	v.Commit = Slot(d.Uvarint())
	d.field = "Forgotten"
	v.Forgotten = Slot(d.Uvarint())
	v.Entries = d.entries(v.Forgotten, 0)
	if err := d.finish(TypeObserveEvent); err != nil {
		return err
	}
	*m = v
	return nil
}

// ProposeRequest: flags byte (bit 0 HasSlot, bit 1 Wait; other bits must be
// 0), Slot uvarint (present even without HasSlot), Value bytes.

// ProposeRequest flag bits.
const (
	proposeHasSlot = 1 << 0
	proposeWait    = 1 << 1
	proposeFlags   = proposeHasSlot | proposeWait
)

// WireType returns TypeProposeRequest.
func (m *ProposeRequest) WireType() Type { return TypeProposeRequest }

func (m *ProposeRequest) size() (int, error) {
	if len(m.Value) > MaxValueSize {
		return 0, tooLarge(TypeProposeRequest, "Value", len(m.Value), MaxValueSize)
	}
	return headerLen + 1 + UvarintLen(uint64(m.Slot)) + BytesLen(len(m.Value)), nil
}

// AppendBinary appends the encoding of m to b.
func (m *ProposeRequest) AppendBinary(b []byte) ([]byte, error) {
	n, err := m.size()
	if err != nil {
		return b, err
	}
	var flags byte
	if m.HasSlot {
		flags |= proposeHasSlot
	}
	if m.Wait {
		flags |= proposeWait
	}
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeProposeRequest)
	b = append(b, flags)
	b = AppendUvarint(b, uint64(m.Slot))
	b = AppendBytes(b, m.Value)
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *ProposeRequest) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one ProposeRequest.
func (m *ProposeRequest) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeProposeRequest)
	var v ProposeRequest
	d.field = "flags"
	off := d.off
	flags := d.Byte()
	if flags&^proposeFlags != 0 {
		d.fail(ErrMalformed, off, "unknown flags %#x", flags)
	}
	v.HasSlot = flags&proposeHasSlot != 0
	v.Wait = flags&proposeWait != 0
	d.field = "Slot"
	v.Slot = Slot(d.Uvarint())
	d.field = "Value"
	if p := d.value(); len(p) > 0 {
		v.Value = append([]byte(nil), p...)
	}
	if err := d.finish(TypeProposeRequest); err != nil {
		return err
	}
	*m = v
	return nil
}

// ProposeReply: Status byte (a known ProposeStatus), Slot uvarint, Leader
// uvarint, Commit uvarint, ChosenIn uvarint.

// String returns the status's name, such as "ProposeOK".
func (s ProposeStatus) String() string {
	switch s {
	case ProposeOK:
		return "ProposeOK"
	case ProposeNotLeader:
		return "ProposeNotLeader"
	case ProposeTaken:
		return "ProposeTaken"
	}
	return fmt.Sprintf("ProposeStatus(%d)", uint8(s))
}

func (s ProposeStatus) known() bool { return s <= ProposeTaken }

// WireType returns TypeProposeReply.
func (m *ProposeReply) WireType() Type { return TypeProposeReply }

func (m *ProposeReply) size() (int, error) {
	if !m.Status.known() {
		return 0, fmt.Errorf("%w: ProposeReply.Status is unknown %v", ErrMalformed, m.Status)
	}
	return headerLen + 1 + UvarintLen(uint64(m.Slot)) + UvarintLen(uint64(m.Leader)) + UvarintLen(uint64(m.Commit)) + UvarintLen(uint64(m.ChosenIn)), nil
}

// AppendBinary appends the encoding of m to b. An unknown Status is
// ErrMalformed.
func (m *ProposeReply) AppendBinary(b []byte) ([]byte, error) {
	n, err := m.size()
	if err != nil {
		return b, err
	}
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeProposeReply)
	b = append(b, byte(m.Status))
	b = AppendUvarint(b, uint64(m.Slot))
	b = AppendUvarint(b, uint64(m.Leader))
	b = AppendUvarint(b, uint64(m.Commit))
	b = AppendUvarint(b, uint64(m.ChosenIn))
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *ProposeReply) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one ProposeReply.
func (m *ProposeReply) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeProposeReply)
	var v ProposeReply
	d.field = "Status"
	off := d.off
	v.Status = ProposeStatus(d.Byte())
	if !v.Status.known() {
		d.fail(ErrMalformed, off, "unknown status %d", uint8(v.Status))
	}
	d.field = "Slot"
	v.Slot = Slot(d.Uvarint())
	d.field = "Leader"
	v.Leader = Ballot(d.Uvarint())
	d.field = "Commit"
	v.Commit = Slot(d.Uvarint())
	d.field = "ChosenIn"
	v.ChosenIn = Ballot(d.Uvarint())
	if err := d.finish(TypeProposeReply); err != nil {
		return err
	}
	*m = v
	return nil
}

// Probe: Ballot uvarint.

// WireType returns TypeProbe.
func (m *Probe) WireType() Type { return TypeProbe }

func (m *Probe) size() (int, error) {
	return headerLen + UvarintLen(uint64(m.Ballot)), nil
}

// AppendBinary appends the encoding of m to b.
func (m *Probe) AppendBinary(b []byte) ([]byte, error) {
	n, _ := m.size()
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeProbe)
	b = AppendUvarint(b, uint64(m.Ballot))
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *Probe) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one Probe.
func (m *Probe) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeProbe)
	var v Probe
	d.field = "Ballot"
	v.Ballot = Ballot(d.Uvarint())
	if err := d.finish(TypeProbe); err != nil {
		return err
	}
	*m = v
	return nil
}

// ProbeReply: LeaderAlive bool, Leader uvarint, Promised uvarint.

// WireType returns TypeProbeReply.
func (m *ProbeReply) WireType() Type { return TypeProbeReply }

func (m *ProbeReply) size() (int, error) {
	return headerLen + 1 + UvarintLen(uint64(m.Leader)) + UvarintLen(uint64(m.Promised)), nil
}

// AppendBinary appends the encoding of m to b.
func (m *ProbeReply) AppendBinary(b []byte) ([]byte, error) {
	n, _ := m.size()
	b = slices.Grow(b, n)
	b = appendHeader(b, TypeProbeReply)
	b = AppendBool(b, m.LeaderAlive)
	b = AppendUvarint(b, uint64(m.Leader))
	b = AppendUvarint(b, uint64(m.Promised))
	return b, nil
}

// MarshalBinary returns the encoding of m.
func (m *ProbeReply) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes data, which must hold exactly one ProbeReply.
func (m *ProbeReply) UnmarshalBinary(data []byte) error {
	d := Decoder{data: data}
	d.header(TypeProbeReply)
	var v ProbeReply
	d.field = "LeaderAlive"
	v.LeaderAlive = d.Bool()
	d.field = "Leader"
	v.Leader = Ballot(d.Uvarint())
	d.field = "Promised"
	v.Promised = Ballot(d.Uvarint())
	if err := d.finish(TypeProbeReply); err != nil {
		return err
	}
	*m = v
	return nil
}
