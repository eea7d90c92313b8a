package scepserver_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A path that looks like SCEP's and is none (a profile's with a trailing
// slash, one level too deep, /scep in another case) gets 404 with a reason
// naming the paths served, where it got the mux's bare "404 page not
// found" (r122); what is served is unchanged.
func TestUnknownSCEPPathIsExplained(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	const served = "SCEP is served at /scep and /scep/PROFILE (a profile's name), each also with /pkiclient.exe after it, " +
		"at /cgi-bin/pkiclient.exe, and at /certsrv/mscep/mscep.dll (in any case, NDES's); other paths are case-sensitive"
	tests := []struct {
		path   string
		status int
		want   string // the body, or a part of it for a 200
	}{
		{"/scep/default/", http.StatusNotFound, "404 not found: nothing is served at /scep/default/ (the profile default is served at /scep/default, without the trailing slash); " + served},
		{"/scep/nosuchprofile/", http.StatusNotFound, "404 not found: nothing is served at /scep/nosuchprofile/; " + served},
		{"/scep/nope/deeper", http.StatusNotFound, "404 not found: nothing is served at /scep/nope/deeper; " + served},
		{"/scep/default/pkiclient.exe/", http.StatusNotFound, "404 not found: nothing is served at /scep/default/pkiclient.exe/; " + served},
		{"/SCEP", http.StatusNotFound, "404 not found: nothing is served at /SCEP; " + served},
		{"/Scep/default", http.StatusNotFound, "404 not found: nothing is served at /Scep/default; " + served},
		{"/CGI-BIN/PKICLIENT.EXE", http.StatusNotFound, "404 not found: nothing is served at /CGI-BIN/PKICLIENT.EXE; " + served},
		// Served as before.
		{"/scep", http.StatusOK, "SCEPStandard"},
		{"/scep/", http.StatusOK, "SCEPStandard"},
		{"/scep/default", http.StatusOK, "SCEPStandard"},
		{"/scep/default/pkiclient.exe", http.StatusOK, "SCEPStandard"},
		{"/scep/pkiclient.exe", http.StatusOK, "SCEPStandard"},
		{"/cgi-bin/pkiclient.exe", http.StatusOK, "SCEPStandard"},
		{"/CertSrv/mscep/mscep.dll", http.StatusOK, "SCEPStandard"},
		{"/scep/nosuchprofile", http.StatusNotFound, `unknown profile "nosuchprofile"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(ts.URL + tt.path + "?operation=GetCACaps")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSuffix(string(body), "\n")
			if resp.StatusCode != tt.status {
				t.Fatalf("HTTP %d %q, want %d", resp.StatusCode, got, tt.status)
			}
			if tt.status == http.StatusNotFound && !strings.HasPrefix(tt.want, "unknown profile") {
				if got != tt.want {
					t.Errorf("body %q,\nwant %q", got, tt.want)
				}
			} else if !strings.Contains(got, tt.want) {
				t.Errorf("body %q, want %q in it", got, tt.want)
			}
		})
	}
}
