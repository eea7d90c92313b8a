package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStepOfStack: each stack goes to the first step whose frames it holds,
// so a private-key operation or a check is not counted with the code that
// calls it, and a garbage-collection assist not with the work it
// interrupted. The stacks are real ones from a profile of the server,
// innermost first, shortened.
func TestStepOfStack(t *testing.T) {
	const handler = "github.com/scepter/scepter/internal/scep/scepserver.(*Handler).enroll"
	const issue = "github.com/scepter/scepter/internal/ca.(*Issuer).Issue"
	tests := []struct {
		want  string
		stack []string
	}{
		{"RSA decryption of the requester's content key", []string{"crypto/internal/fips140/bigmod.addMulVVW1024", "crypto/rsa.decryptPKCS1v15", "crypto/rsa.(*PrivateKey).Decrypt", "github.com/scepter/scepter/internal/cms.(*EnvelopedData).DecryptKeyTransport", handler, "net/http.(*conn).serve"}},
		{"the reply's signature (CertRep, by the RA key)", []string{"crypto/internal/fips140/bigmod.(*Nat).Exp", "crypto/rsa.SignPKCS1v15", "crypto/rsa.(*PrivateKey).Sign", "github.com/scepter/scepter/internal/cms.Sign", "github.com/scepter/scepter/internal/scep.BuildCertRep", handler}},
		// The signed attributes are encoded under cms.Sign, but are no
		// private-key operation.
		{"SCEP, EST and CMS: parsing, building the certificate and the reply, the rest of the service", []string{"encoding/asn1.Marshal", "github.com/scepter/scepter/internal/cms.encodeSignedAttrs", "github.com/scepter/scepter/internal/cms.Sign", handler, "net/http.(*conn).serve"}},
		{"the CA's signature on the certificate", []string{"crypto/internal/fips140/nistec.p256OrdMul", "crypto/ecdsa.SignASN1", "crypto/ecdsa.(*PrivateKey).Sign", "crypto.SignMessage", issue, handler}},
		{"the CA's own signature checked on the new certificate", []string{"crypto/internal/fips140/nistec.p256PointAddAsm", "crypto/ecdsa.VerifyASN1", "crypto/x509.checkSignature", "crypto/x509.(*Certificate).CheckSignature", issue, handler}},
		{"lint before signing (zlint)", []string{"runtime.mallocgc", "github.com/zmap/zlint/v3/lint.(*CertificateLint).execute", "github.com/scepter/scepter/internal/ca/lint.(*Linter).Check", "github.com/scepter/scepter/internal/ca.(*prepared).lintTBS", issue}},
		{"the key policy and weak-key checks", []string{"math/big.nat.divRecursive", "github.com/scepter/scepter/internal/ca.CheckKey", issue}},
		{"the CSR's proof of possession", []string{"crypto/rsa.VerifyPKCS1v15", "crypto/x509.(*CertificateRequest).CheckSignature", "github.com/scepter/scepter/internal/enroll.checkProofOfPossession", "github.com/scepter/scepter/internal/enroll.(*Service).enroll"}},
		{"the requester's signature on the pkiMessage", []string{"crypto/rsa.VerifyPKCS1v15", "github.com/scepter/scepter/internal/scep.(*PKIMessage).Verify", handler}},
		{"the reply's content key encrypted to the requester", []string{"crypto/rsa.EncryptPKCS1v15", "github.com/scepter/scepter/internal/cms.keyTransportRecipient", "github.com/scepter/scepter/internal/cms.Encrypt"}},
		{"garbage collection (marking, assists, sweeping)", []string{"runtime.scanobject", "runtime.gcDrainN", "runtime.gcAssistAlloc", "runtime.mallocgc", "github.com/zmap/zlint/v3/lint.(*CertificateLint).execute", issue}},
		{"garbage collection (marking, assists, sweeping)", []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}},
		{"store: fsync", []string{"internal/runtime/syscall/linux.Syscall6", "syscall.Syscall", "modernc.org/libc.Xfsync", "modernc.org/sqlite/lib._unixSync", "modernc.org/sqlite/lib._sqlite3WalFrames", "modernc.org/sqlite/lib._vdbeCommit"}},
		{"store: commits (log frames written)", []string{"modernc.org/libc.Xpwrite", "modernc.org/sqlite/lib._sqlite3WalFrames", "modernc.org/sqlite/lib._vdbeCommit", "modernc.org/sqlite.(*tx).Commit"}},
		{"store: checkpoints and the search index (in the background)", []string{"modernc.org/sqlite/lib._walCheckpoint", "modernc.org/sqlite.(*conn).exec", "github.com/scepter/scepter/internal/store/sqlite.(*Store).checkpointLoop"}},
		{"store: statements and the rest of its batches", []string{"modernc.org/sqlite/lib._sqlite3VdbeExec", "github.com/scepter/scepter/internal/store/sqlite.(*Store).RecordIssuance", "github.com/scepter/scepter/internal/enroll.(*Service).issue", handler}},
		{"logging", []string{"log/slog.(*handleState).appendAttr", "log/slog.(*Logger).Info", "github.com/scepter/scepter/internal/enroll.(*Service).issue"}},
		// Reads of the request go through a wrapper of ours.
		{"sockets and TLS records (reads, writes, the handshake's key exchange)", []string{"syscall.read", "internal/poll.(*FD).Read", "net.(*conn).Read", "github.com/scepter/scepter/internal/server.(*limitedConn).Read", "net/http.(*connReader).Read"}},
		{"HTTP: the server's loop, requests and headers", []string{"net/textproto.(*Reader).ReadMIMEHeader", "net/http.readRequest", "net/http.(*conn).serve"}},
		{"Go runtime: scheduler, timers, network poller", []string{"runtime.netpoll", "runtime.findRunnable", "runtime.schedule"}},
		{"other", []string{"main.main"}},
	}
	for _, tt := range tests {
		per, _ := classify([]sample{{seconds: 0.01, stack: tt.stack}})
		got := ""
		for i, v := range per {
			if v > 0 {
				got = steps[i].name
			}
		}
		if got != tt.want {
			t.Errorf("stack %s…: step %q, want %q", tt.stack[0], got, tt.want)
		}
	}
}

// TestParseTraces reads go tool pprof -traces output: the header skipped,
// a sample's value in its unit, labels not taken for frames.
func TestParseTraces(t *testing.T) {
	const text = `File: scepter
Type: cpu
Duration: 5.01s, Total samples = 4.09s (81.57%)
-----------+-------------------------------------------------------
      10ms   runtime.mallocgcTiny
             runtime.mallocgc
-----------+-------------------------------------------------------
     1.20s   crypto/rsa.decrypt (inline)
         key:[value]
             crypto/rsa.(*PrivateKey).Decrypt
-----------+-------------------------------------------------------
     500us   main.main
-----------+-------------------------------------------------------
`
	got, err := parseTraces(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d samples, want 3: %+v", len(got), got)
	}
	wantSec := []float64{0.01, 1.2, 0.0005}
	wantStack := [][]string{{"runtime.mallocgcTiny", "runtime.mallocgc"}, {"crypto/rsa.decrypt", "crypto/rsa.(*PrivateKey).Decrypt"}, {"main.main"}}
	for i, s := range got {
		if d := s.seconds - wantSec[i]; d > 1e-12 || d < -1e-12 {
			t.Errorf("sample %d: %v s, want %v", i, s.seconds, wantSec[i])
		}
		if strings.Join(s.stack, " ") != strings.Join(wantStack[i], " ") {
			t.Errorf("sample %d: stack %q, want %q", i, s.stack, wantStack[i])
		}
	}
	if _, err := parseTraces(strings.NewReader("-----------+---\n      lots   main.main\n")); err == nil {
		t.Error("a sample without a duration was read")
	}
}

// TestReportWhere: the table of a profiled run adds up to the run's CPU,
// step by step as the shares of its samples; a row whose profile run
// failed is named with the reason.
func TestReportWhere(t *testing.T) {
	got := report(t, func(results string) {
		if err := os.WriteFile(filepath.Join(results, "profile", "scepter-rsa.error"), []byte("the profile run gave no result:\nconnection refused\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	expectLines(t, got,
		"| step | part | scepter-default: ms (share) | scepter-est: ms (share) |",
		// The runs' server CPU per enrollment, from their JSON: 3.65 and 0.88 ms.
		"| **server CPU per enrollment in the profile run** | | **3.65** | **0.88** |",
		// scepter-default: 1.71 s of 4.62 s of samples in the decryption,
		// times 3.652 ms: 1.35 ms.
		"| RSA decryption of the requester's content key | crypto floor | 1.35 (37%) | – |",
		"- Not profiled: scepter-rsa: the profile run gave no result: connection refused.",
	)
}

// TestStepsNameOurFunctions: every frame a step names in our own packages
// is a function or method that exists, so that a rename fails here instead
// of moving its samples silently into the catch-all step of our code.
func TestStepsNameOurFunctions(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	const module = "github.com/scepter/scepter/"
	names := map[string]bool{} // "internal/ca.(*Issuer).Issue", "internal/cms.Sign", …
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			name := pkg + "." + fn.Name.Name
			if fn.Recv != nil && len(fn.Recv.List) == 1 {
				switch r := fn.Recv.List[0].Type.(type) {
				case *ast.StarExpr:
					if id, ok := r.X.(*ast.Ident); ok {
						name = pkg + ".(*" + id.Name + ")." + fn.Name.Name
					}
				case *ast.Ident:
					name = pkg + "." + r.Name + "." + fn.Name.Name
				}
			}
			names[name] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 100 {
		t.Fatalf("found %d functions under %s: the walk went wrong", len(names), root)
	}
	checked := 0
	for _, st := range steps {
		for _, g := range st.groups {
			for _, s := range g {
				rest, ok := strings.CutPrefix(s, module)
				if !ok {
					continue
				}
				checked++
				found := false
				for n := range names {
					// A pattern ending in "." or "/" names a package or
					// a type's methods; the rest are a name's prefix.
					if strings.HasPrefix(n, rest) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("step %q names %s, which no function of ours matches", st.name, s)
				}
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d names", checked)
	}
}
