package store

import (
	"errors"

	"github.com/scepter/scepter/internal/pki"
)

// UnavailableMessage is what a 503 of the console or the admin API says
// (an operator reads it): the service's reason where the error carries one
// (the audit trail changed outside scepter, a node that issues nothing
// now), else that the database file is gone, else why the store cannot
// write when it knows (the database was
// reached: retrying in seconds helps only once the operator has mended
// that), else that the database (or a key token) is out of reach. Devices are told less.
func UnavailableMessage(err error) string {
	var pe *pki.Error
	if errors.As(err, &pe) && pe.Code == pki.EUnavailable && pe.Message != "" {
		return pe.Message
	}
	if errors.Is(err, ErrFileGone) {
		return "nothing can be read or recorded now: the database file was removed or replaced while scepter ran; restore a removed file and restart scepter (the log names the file)"
	}
	switch CannotWriteCause(err) {
	case ErrDiskFull:
		return "nothing can be recorded now: the disk the database is on is full; free some room there, and scepter goes on by itself (the log names the error)"
	case ErrLocked:
		return "nothing can be recorded now: the database is locked by another process (an sqlite3 shell, a psql session or a script in a transaction?); end it, and try again"
	case ErrReadOnly:
		return "nothing can be recorded now: the database is read-only (a file system mounted read-only, or a PostgreSQL standby); make it writable, and try again"
	}
	// The sentinel is shared: a key token out of reach (PKCS#11) wraps it too.
	return "the database or a key token cannot be reached just now; try again in a few seconds (the log says which)"
}
