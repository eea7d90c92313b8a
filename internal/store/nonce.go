package store

import "time"

// NonceSeen is RememberNonce's ErrConflict for a pair remembered already
// and still live. Expires is the expiry the pair was remembered with: a
// caller that knows the lifetime it remembers pairs for tells from it when
// the pair was first remembered (a copy of a message still being
// answered, or a replay of one answered long ago). A store that cannot
// tell returns ErrConflict alone.
type NonceSeen struct {
	Expires time.Time
	// Refused: the run of the message that remembered the pair ended
	// refused (MarkNonceRefused); a copy of it is a replay, and no run of
	// it is still going.
	Refused bool
}

func (e *NonceSeen) Error() string {
	return "nonce remembered until " + e.Expires.UTC().Format(time.RFC3339Nano) + ": " + ErrConflict.Error()
}

// Unwrap makes a NonceSeen an ErrConflict for errors.Is.
func (e *NonceSeen) Unwrap() error { return ErrConflict }
