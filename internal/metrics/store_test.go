package metrics_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The wrapper overrides every method of store.Store: a method left to the
// embedded store would fail without being counted.
func TestStoreWrapperCoversTheInterface(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "store.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	overridden := map[string]bool{}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv == nil {
			continue
		}
		if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); ok {
			if id, ok := star.X.(*ast.Ident); ok && id.Name == "countingStore" {
				overridden[fn.Name.Name] = true
			}
		}
	}
	it := reflect.TypeFor[store.Store]()
	for i := range it.NumMethod() {
		if name := it.Method(i).Name; !overridden[name] {
			t.Errorf("store.Store.%s is not counted: add it to internal/metrics/store.go like the others", name)
		}
	}
}

// Every failing call is counted under its own method's name, answers that
// are not failures are not, nor are calls the caller canceled.
func TestStoreErrorsAreCountedByOperation(t *testing.T) {
	e := newEnv(t)
	st := e.m.Store(e.pki.Store)
	ctx := context.Background()

	// Answers, not failures.
	if _, err := st.Certificate(ctx, "nobody", "01"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Certificate of nobody: %v, want ErrNotFound", err)
	}
	if err := st.RememberNonce(ctx, "tx", []byte("n"), e.pki.Clock.Now(), e.pki.Clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.RememberNonce(ctx, "tx", []byte("n"), e.pki.Clock.Now(), e.pki.Clock.Now().Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a replayed nonce: %v, want ErrConflict", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.Ping(canceled); err == nil {
		t.Fatal("Ping with a canceled context: no error")
	}
	fams := scrape(t, e.handler)
	for _, op := range []string{"Certificate", "RememberNonce", "Ping"} {
		expect(t, fams, "scepter_store_errors_total", map[string]string{"op": op}, 0)
	}

	// Now every call fails: each is counted once, under its own name.
	e.pki.Store.Close()
	wrapped := reflect.ValueOf(st)
	it := reflect.TypeFor[store.Store]()
	failed := map[string]bool{}
	for i := range it.NumMethod() {
		name := it.Method(i).Name
		meth := wrapped.MethodByName(name)
		args := make([]reflect.Value, meth.Type().NumIn())
		for j := range args {
			if in := meth.Type().In(j); in == reflect.TypeFor[context.Context]() {
				args[j] = reflect.ValueOf(ctx)
			} else {
				args[j] = reflect.Zero(in)
			}
		}
		if meth.Type().IsVariadic() {
			// AppendAudit with one event, so that it has work to do.
			args[len(args)-1] = reflect.ValueOf([]pki.AuditEvent{{Type: "x"}})
			out := meth.CallSlice(args)
			failed[name] = !out[len(out)-1].IsNil()
			continue
		}
		out := meth.Call(args)
		failed[name] = !out[len(out)-1].IsNil()
	}
	fams = scrape(t, e.handler)
	for name, f := range failed {
		if !f {
			t.Logf("%s on a closed store with zero arguments: no error (nothing to do)", name)
		}
		want := 0.0
		if f {
			want = 1
		}
		expect(t, fams, "scepter_store_errors_total", map[string]string{"op": name}, want)
	}
	for _, must := range []string{"Ping", "Certificate", "RecordIssuance", "ReserveSerial", "Dashboard", "ListRequests"} {
		if !failed[must] {
			t.Errorf("%s on a closed store: no error", must)
		}
	}
}
