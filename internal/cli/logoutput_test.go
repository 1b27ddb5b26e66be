package cli

import (
	"bytes"
	"testing"
	"time"
)

func TestJSONComponentOutput(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	o := &jsonComponentOutput{w: &buf, now: func() time.Time { return now }}
	for _, in := range []string{"enrich | hello \"there\"\n", "enrich | a | b\n", "no name here\n"} {
		if n, err := o.Write([]byte(in)); err != nil || n != len(in) {
			t.Fatalf("Write(%q) = %d, %v", in, n, err)
		}
	}
	want := `{"time":"2026-12-06T08:00:00Z","level":"INFO","msg":"hello \"there\"","component":"enrich","source":"component"}
{"time":"2026-12-06T08:00:00Z","level":"INFO","msg":"a | b","component":"enrich","source":"component"}
{"time":"2026-12-06T08:00:00Z","level":"INFO","msg":"no name here","source":"component"}
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"", time.Time{}, ""},
		{"10m", now.Add(-10 * time.Minute), ""},
		{"2026-12-06T07:00:00Z", now.Add(-time.Hour), ""},
		{"-5m", time.Time{}, "give a positive duration"},
		{"yesterday", time.Time{}, "give a duration such as 10m"},
	}
	for _, tc := range tests {
		got, err := parseSince(tc.in, now)
		if tc.wantErr != "" {
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr)) {
				t.Errorf("parseSince(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
}
