package pki

import (
	"crypto/sha256"
	"encoding/binary"
)

// AuditGenesis is the PrevHash of the first record of an audit trail.
var AuditGenesis = make([]byte, sha256.Size)

// auditChainVersion is the first byte hashed, so a later change of the
// encoding cannot be mistaken for this one.
const auditChainVersion = 1

// AuditChainHash is the hash an audit record carries: SHA-256 over a
// version byte, prev (the hash of the record before it) and every field of
// e but PrevHash and Hash, each length-prefixed so that no two records
// encode alike. The ID is part of it, so moving a record to another place
// in the trail breaks the chain as much as editing it; the time is taken to
// the microsecond, the precision every store keeps.
func AuditChainHash(prev []byte, e AuditEvent) []byte {
	return AuditChainLink(prev, e.ID, AuditChainTail(e))
}

// AuditChainTail is what AuditChainHash hashes of e after prev and its ID:
// its time and its other fields, each length-prefixed. A store that learns
// prev and the ID only inside its transaction (PostgreSQL's audit_append)
// adds those itself, as AuditChainLink does.
func AuditChainTail(e AuditEvent) []byte {
	fields := [...]string{e.Type, e.Actor, e.Profile, e.SerialHex, e.IssuerID, e.Subject,
		e.TransactionID, e.Outcome, e.Reason, e.Detail}
	size := 8
	for _, f := range fields {
		size += 8 + len(f)
	}
	b := make([]byte, 0, size)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMicro()))
	for _, f := range fields {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// AuditChainLink is AuditChainHash of the record with the given ID and
// tail (AuditChainTail) after prev: SHA-256 over the version byte, prev
// length-prefixed, the ID and the tail.
func AuditChainLink(prev []byte, id int64, tail []byte) []byte {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte{auditChainVersion})
	binary.BigEndian.PutUint64(n[:], uint64(len(prev)))
	h.Write(n[:])
	h.Write(prev)
	binary.BigEndian.PutUint64(n[:], uint64(id))
	h.Write(n[:])
	h.Write(tail)
	return h.Sum(nil)
}
