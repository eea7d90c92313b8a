package postgres

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/storetest"
)

// BenchmarkRecordIssuance is storetest's, shared with the SQLite store, on
// PostgreSQL. The store has
// the production pool (pool_max_conns defaults to max(4, CPUs)), on a fresh
// database (a copy of the migrated template) of $SCEPTER_TEST_POSTGRES_URL's
// server (skipped without it);
// every commit waits for the server's WAL flush as it is configured there.
func BenchmarkRecordIssuance(b *testing.B) {
	storetest.BenchmarkRecordIssuance(b, func(b *testing.B) store.Store {
		b.Helper()
		s, err := Open(context.Background(), migrated.Database(b))
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
