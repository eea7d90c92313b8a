package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/scepter/scepter/internal/server"
)

// foldingRoutes is a router whose folded paths are served in any case.
type foldingRoutes struct {
	routes
	folded []string
}

func (f foldingRoutes) FoldedPaths() []string { return f.folded }

// NDES's paths are served in any letter case, as IIS serves them, on both
// listeners and through the plain listener's loopback guard; every other
// path keeps its case.
func TestFoldedPathsServedInAnyCase(t *testing.T) {
	scep := foldingRoutes{routes{"/scep": named("scep"), "/certsrv/mscep/mscep.dll": named("mscep"),
		"/certsrv/mscep/mscep.dll/pkiclient.exe": named("pkiclient")},
		[]string{"/certsrv/mscep/mscep.dll", "/certsrv/mscep/mscep.dll/pkiclient.exe"}}
	ndes := foldingRoutes{routes{"/certsrv/mscep_admin/{$}": named("ndes")}, []string{"/certsrv/mscep_admin/"}}
	h := server.Handlers{SCEP: scep, NDES: ndes, HTTPSPort: "8443"}
	plain, err := server.PlainMux(h)
	if err != nil {
		t.Fatal(err)
	}
	secure, err := server.TLSMux(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		remote string
		want   int
		body   string
	}{
		{"/certsrv/mscep/mscep.dll", "127.0.0.1:5000", 200, "mscep"},
		{"/CertSrv/mscep/mscep.dll", "192.168.1.20:5000", 200, "mscep"},
		{"/CERTSRV/MSCEP/MSCEP.DLL", "192.168.1.20:5000", 200, "mscep"},
		{"/certsrv/mscep/mscep.DLL", "192.168.1.20:5000", 200, "mscep"},
		{"/CertSrv/MSCEP/mscep.dll/PKICLIENT.EXE", "192.168.1.20:5000", 200, "pkiclient"},
		{"/CERTSRV/MSCEP_ADMIN/", "127.0.0.1:5000", 200, "ndes"},
		{"/certsrv/mscep/mscep.dllx", "192.168.1.20:5000", 404, ""},
		{"/SCEP", "192.168.1.20:5000", 404, ""},
	} {
		for name, mux := range map[string]http.Handler{"plain": plain, "https": secure} {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tc.want || (tc.body != "" && string(body) != tc.body) {
				t.Errorf("%s %s: %d %q, want %d %q", name, tc.path, rec.Code, body, tc.want, tc.body)
			}
			// Metrics label a request by the pattern recorded on the
			// request they passed in, folded or not.
			if tc.want == http.StatusOK && req.Pattern == "" {
				t.Errorf("%s %s: no pattern recorded on the request", name, tc.path)
			}
		}
	}
	// The plain listener's loopback guard holds for the page in any case.
	req := httptest.NewRequest(http.MethodGet, "/CERTSRV/MSCEP_ADMIN/", nil)
	req.RemoteAddr = "192.168.1.20:5000"
	rec := httptest.NewRecorder()
	plain.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("plain /CERTSRV/MSCEP_ADMIN/ from the LAN: %d, want 403", rec.Code)
	}
}
