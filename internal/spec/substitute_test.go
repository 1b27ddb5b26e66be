package spec

import "testing"

func TestSubstitute(t *testing.T) {
	env := map[string]string{"RATE": "7", "NAME": "orders"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		name, in, want string
		errs           int
	}{
		{"plain", "rate: ${RATE}\n", "rate: 7\n", 0},
		{"default", "n: ${N:-5}\nname: ${NAME:-x}\n", "n: 5\nname: orders\n", 0},
		{"escaped", "expr: '$${keep}'\n", "expr: '${keep}'\n", 0},
		{"comment kept", "# ${UNSET}\nrate: ${RATE}\n", "# ${UNSET}\nrate: 7\n", 0},
		{"unset", "a: ${UNSET}\n", "a: \n", 1},
		{"no references", "a: 1\n", "a: 1\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, diags := Substitute("f.yaml", []byte(tc.in), lookup)
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if len(diags) != tc.errs {
				t.Errorf("diagnostics %v, want %d", diags, tc.errs)
			}
			for _, d := range diags {
				if d.File != "f.yaml" || d.Line != 1 {
					t.Errorf("diagnostic at %s:%d", d.File, d.Line)
				}
			}
		})
	}
	if got, _ := Substitute("f.yaml", []byte("a: ${X:-1}\n"), nil); string(got) != "a: 1\n" {
		t.Errorf("nil lookup: %q", got)
	}
}
