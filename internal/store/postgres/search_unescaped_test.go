package postgres

import (
	"strings"
	"testing"
)

// TestSearchIndexSpellsSearchText: the trigram index of 0016 is on the
// expression the queries spell, or the planner would not use it.
func TestSearchIndexSpellsSearchText(t *testing.T) {
	body, err := migrationFiles.ReadFile("migrations/0016_search_unescaped.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), searchText) {
		t.Errorf("0016 does not spell the queries' search expression:\n%s", searchText)
	}
}
