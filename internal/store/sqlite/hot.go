package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// The statements every enrollment runs are prepared once, at Open, on the
// writer connection: compiling the certificate insert, with the triggers
// it fires, costs more than running it. A transaction's wtx runs them
// through those prepared statements; any other query is compiled as usual.
var hotQueries = []string{
	insertNonceQuery,
	reserveSerialQuery,
	insertCertificateQuery,
	recordSerialQuery,
	auditHeadQuery,
	insertAuditEventQuery,
	updateAuditHeadQuery,
	`SAVEPOINT write`,
	`RELEASE write`,
}

// prepareHot prepares hotQueries on the writer connection.
func (s *Store) prepareHot(ctx context.Context) error {
	s.hot = make(map[string]*sql.Stmt, len(hotQueries))
	for _, q := range hotQueries {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %.40q: %w", q, err)
		}
		s.hot[q] = st
	}
	return nil
}

// wtx is a write transaction that runs the hot statements prepared.
type wtx struct {
	*sql.Tx
	hot map[string]*sql.Stmt // read-only once Open has returned
}

// prepared is q's statement in this transaction, or nil when q is not hot.
func (t *wtx) prepared(ctx context.Context, q string) *sql.Stmt {
	if st := t.hot[q]; st != nil {
		return t.Tx.StmtContext(ctx, st)
	}
	return nil
}

func (t *wtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.prepared(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t *wtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

func (t *wtx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := t.prepared(ctx, q); st != nil {
		return st, nil
	}
	return t.Tx.PrepareContext(ctx, q)
}
