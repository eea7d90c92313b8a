package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// planShiftCases are listings whose first runs cost the planner much (a
// frequent term or no term, under a rare status or profile), so that a
// statement prepared for them and run more than five times is given
// PostgreSQL's generic plan, which walks the ids and filters: fine for
// them, but for the probe, run next with other values, it reads the whole
// table where a custom plan reads one index.
var planShiftCases = []struct {
	name   string
	warmup store.CertFilter
	probe  store.CertFilter
	index  string // the probe's custom plan reads it
}{
	{"search under a status",
		store.CertFilter{Search: "device", Status: pki.StatusRevoked},
		store.CertFilter{Search: "device-1234.", Status: pki.StatusValid},
		"certificates_search"},
	{"search under a profile",
		store.CertFilter{Search: "device", Profile: "rare"},
		store.CertFilter{Search: "device-1234.", Profile: "default"},
		"certificates_search"},
	// A profile alone no longer provokes the generic plan: each listed
	// row's renewal (a subquery per row) makes a plan whose LIMIT is a
	// parameter, guessed at a tenth of the rows, cost more than the
	// custom one. A short term (no trigram lookup) under it still does.
	{"profile",
		store.CertFilter{Profile: "rare", Search: "de"},
		store.CertFilter{Profile: "none-such", Search: "de"},
		"certificates_profile"},
}

// fillPlanShift is the inventory of planShiftCases: 20,000 certificates
// (ANALYZE's sample at the default statistics target holds all of them,
// so the statistics and plans do not vary between runs), one in a hundred
// revoked, one in fifty of profile rare.
func fillPlanShift(t *testing.T, s *Store) {
	fillAnalyzed(t, s, generatedCerts{
		subject: `'CN=device-' || i || ',OU=Devices,O=Example Corp'`,
		sans:    `'["dns:device-' || i || '.fleet.corp.example","ip:10.0.' || (i % 256) || '.1"]'`,
		status:  `CASE WHEN i % 100 = 0 THEN 'revoked' ELSE 'valid' END`,
		profile: `CASE WHEN i % 50 = 1 THEN 'rare' ELSE 'default' END`,
	})
}

// TestSearchPlansStayCustom: ListCertificates runs nine times on one
// connection with values for which PostgreSQL would switch a prepared
// statement to its generic plan, then a tenth time with values a custom
// plan answers from an index; auto_explain's plan of that tenth statement,
// as executed, reads the index.
func TestSearchPlansStayCustom(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	fillPlanShift(t, s)

	// The control: the statement as pgx prepares and caches it by default
	// does switch, or this test would show nothing.
	for _, c := range planShiftCases {
		q, args, _, err := listQuery(c.warmup)
		if err != nil {
			t.Fatal(err)
		}
		if generic := preparedGenericPlans(t, s, q, args); generic == 0 {
			t.Errorf("%s: a cached statement run ten times kept custom plans; the case no longer provokes a generic one", c.name)
		}
	}

	plans := explainedStore(t, dbURL)
	for _, c := range planShiftCases {
		t.Run(c.name, func(t *testing.T) {
			for range 9 {
				if _, _, err := plans.ListCertificates(ctx, c.warmup); err != nil {
					t.Fatal(err)
				}
			}
			plans.reset()
			if _, _, err := plans.ListCertificates(ctx, c.probe); err != nil {
				t.Fatal(err)
			}
			got := plans.taken()
			if len(got) != 1 {
				t.Fatalf("%d plans logged for one listing, want 1:\n%s", len(got), strings.Join(got, "\n"))
			}
			outline := planOutline(t, got[0])
			if !strings.Contains(outline, " on "+c.index+"\n") && !strings.Contains(outline, " on "+c.index+" (filtered)\n") {
				t.Errorf("the tenth listing does not read %s:\n%s", c.index, outline)
			}
		})
	}
}

// preparedGenericPlans runs q ten times on one connection as a statement
// pgx prepares and caches, and returns how many of the runs PostgreSQL
// gave its generic plan.
func preparedGenericPlans(t *testing.T, s *Store, q string, args []any) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for range 10 {
		rows, err := conn.Query(ctx, q, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var generic int64
	if err := conn.QueryRow(ctx, `SELECT generic_plans FROM pg_prepared_statements WHERE statement = $1`, q).Scan(&generic); err != nil {
		t.Fatal(err)
	}
	return generic
}

// planNode is a node of a plan in EXPLAIN's JSON.
type planNode struct {
	NodeType  string     `json:"Node Type"`
	IndexName string     `json:"Index Name"`
	Filter    string     `json:"Filter"`
	Plans     []planNode `json:"Plans"`
}

// planOutline is the plan auto_explain logged (after its "duration: … plan:"
// line), a node a line, each with the index it reads and whether it
// filters rows.
func planOutline(t *testing.T, logged string) string {
	t.Helper()
	var plan struct{ Plan planNode }
	_, body, _ := strings.Cut(logged, "\n")
	if err := json.Unmarshal([]byte(body), &plan); err != nil {
		t.Fatalf("auto_explain's plan: %v\n%s", err, logged)
	}
	var b strings.Builder
	var walk func(n planNode, depth int)
	walk = func(n planNode, depth int) {
		b.WriteString(strings.Repeat("  ", depth) + n.NodeType)
		if n.IndexName != "" {
			b.WriteString(" on " + n.IndexName)
		}
		if n.Filter != "" {
			b.WriteString(" (filtered)")
		}
		b.WriteString("\n")
		for _, k := range n.Plans {
			walk(k, depth+1)
		}
	}
	walk(plan.Plan, 0)
	return b.String()
}

// planStore is a Store on one connection that sends it the plan of every
// statement it executes: auto_explain, at level NOTICE, in JSON.
type planStore struct {
	*Store
	mu    sync.Mutex
	plans []string
}

func (p *planStore) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plans = nil
}

func (p *planStore) taken() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.plans...)
}

// explainedStore opens a planStore on the database at dbURL (migrated
// already). Loading auto_explain takes the test server's superuser.
func explainedStore(t *testing.T, dbURL string) *planStore {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	p := &planStore{}
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if plan, ok := strings.CutPrefix(n.Message, "duration: "); ok {
			p.mu.Lock()
			p.plans = append(p.plans, plan)
			p.mu.Unlock()
		}
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `LOAD 'auto_explain';
			SET auto_explain.log_min_duration = 0;
			SET auto_explain.log_format = json;
			SET auto_explain.log_level = notice`)
		return err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p.Store = &Store{pool: pool, name: Redact(dbURL), listMode: customPlanMode(cfg.ConnConfig)}
	return p
}

// TestListModes: ListCertificates runs as the unnamed statement whatever
// the URL sets for pgx's statements, and lists the same certificates in
// each mode.
func TestListModes(t *testing.T) {
	ctx := context.Background()
	s, dbURL := openFresh(t)
	for _, serial := range []string{"0a", "0b", "0c"} {
		c := testCert(serial)
		c.Subject = "CN=device-" + serial + ",O=Example Corp"
		if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		param, value string
		want         pgx.QueryExecMode
	}{
		{"", "", pgx.QueryExecModeCacheDescribe},
		{"default_query_exec_mode", "cache_statement", pgx.QueryExecModeCacheDescribe},
		{"description_cache_capacity", "0", pgx.QueryExecModeDescribeExec},
		{"default_query_exec_mode", "describe_exec", pgx.QueryExecModeDescribeExec},
		{"default_query_exec_mode", "exec", pgx.QueryExecModeExec},
		{"default_query_exec_mode", "simple_protocol", pgx.QueryExecModeSimpleProtocol},
	} {
		u := dbURL
		if c.param != "" {
			u = pgtest.WithParam(t, dbURL, c.param, c.value)
		}
		s, err := Open(ctx, u)
		if err != nil {
			t.Fatalf("%s=%s: %v", c.param, c.value, err)
		}
		if s.listMode != c.want {
			t.Errorf("%s=%s: lists in mode %v, want %v", c.param, c.value, s.listMode, c.want)
		}
		certs, _, err := s.ListCertificates(ctx, store.CertFilter{Search: "device-0b", Status: pki.StatusValid})
		if err != nil || len(certs) != 1 || certs[0].Subject != "CN=device-0b,O=Example Corp" || string(certs[0].DER) != "der" {
			t.Errorf("%s=%s: search lists %+v, %v; want certificate 0b", c.param, c.value, certs, err)
		}
		s.Close()
	}
}
