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
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	putInt := func(v int64) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	h.Write([]byte{auditChainVersion})
	put(prev)
	putInt(e.ID)
	putInt(e.Time.UnixMicro())
	for _, f := range []string{e.Type, e.Actor, e.Profile, e.SerialHex, e.IssuerID, e.Subject,
		e.TransactionID, e.Outcome, e.Reason, e.Detail} {
		put([]byte(f))
	}
	return h.Sum(nil)
}
