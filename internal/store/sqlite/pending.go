package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// Unmigrated is what Pending reads of a database whose schema is older
// than this binary's.
type Unmigrated struct {
	// SchemaVersion is the newest migration the database records, Latest
	// this binary's.
	SchemaVersion, Latest int
	// NewestCRLs is the number of each issuer's newest CRL, by issuer ID.
	NewestCRLs map[string]int64
}

// Pending reads the database at path as it is, before Open would migrate
// it, and without changing it: nil when there is no database there or its
// schema is current (nothing to migrate). A start that is going to be
// refused checks with it first, so that its refusal leaves the schema an
// older scepter can still open (r115 D1). A schema newer than this
// binary's wraps migrate.ErrDatabaseTooNew, as Open's does.
func Pending(ctx context.Context, path string) (*Unmigrated, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if _, err := registeredWALVFS(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	have, err := migrate.Check(ctx, db, Migrations(), dialect())
	var old *migrate.TooOldError
	switch {
	case errors.As(err, &old):
	case err != nil:
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	default:
		return nil, nil
	}
	if have == 0 {
		return nil, nil // a new database: nothing in it to check
	}
	crls, err := sqlstore.NewestCRLs(ctx, db, hasTable)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: the newest CRLs: %w", path, err)
	}
	return &Unmigrated{SchemaVersion: old.Have, Latest: old.Want, NewestCRLs: crls}, nil
}
