package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scepter/scepter/internal/store"
)

// pgError formats an error of this package, as fmt.Errorf does, and marks
// it store.ErrUnavailable when its cause is the database being out of
// reach, so that the protocol edges answer 503 and clients come back.
func pgError(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if cause := cannotWriteCause(err); cause != nil {
		return fmt.Errorf("%w: %w: %w", store.ErrUnavailable, cause, err)
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// cannotWriteCause is the store's name for why the server refused a write,
// when its SQLSTATE says it is the database's state rather than the
// request's: disk_full (53100), read_only_sql_transaction (25006: a
// standby, or default_transaction_read_only), lock_not_available (55P03).
// Each lasts until the operator mends it, and nothing of the write was
// kept, so the protocol edges answer 503 as for a server out of reach.
func cannotWriteCause(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch pe.Code {
	case "53100":
		return store.ErrDiskFull
	case "25006":
		return store.ErrReadOnly
	case "55P03":
		return store.ErrLocked
	}
	return nil
}

// unavailable reports whether err means the server cannot be reached for
// now: no connection (refused, reset, timed out), the server shutting down
// or starting (57P01–57P03), a connection class error (08xxx), or too many
// connections (53300). Errors of a query the server ran and refused are
// not.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "53300":
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed")
}
