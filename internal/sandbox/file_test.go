package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parseString(t *testing.T, text string) (*File, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte("name: p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Parse(filepath.Join(dir, "sandbox.yaml"), "sandbox.yaml", []byte(text))
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []string // each must appear in the error, in this order
	}{
		{"unknown top-level key", "name: x\nservice:\n  db: {postgres: {}}\n",
			[]string{"sandbox.yaml:2:1: sandbox file: unknown key \"service\" — known keys: name, pipeline, services"}},
		{"unknown service key", "services:\n  db:\n    postgres: {}\n    dependson: [x]\n",
			[]string{"sandbox.yaml:4:5: service db: unknown key \"dependson\""}},
		{"unknown postgres key", "services:\n  db:\n    postgres: {db: x}\n",
			[]string{"sandbox.yaml:3:16: service db: postgres: unknown key \"db\" — known keys: database, user"}},
		{"nothing to run", "services:\n  db:\n    env: {A: b}\n",
			[]string{"sandbox.yaml:2:3: service db: says nothing to run"}},
		{"two kinds", "services:\n  db:\n    postgres: {}\n    command: [x]\n",
			[]string{"sandbox.yaml:2:3: service db: gives postgres and command"}},
		{"unknown dependency", "services:\n  a:\n    command: [x]\n    depends_on: [b]\n",
			[]string{"sandbox.yaml:2:3: service \"a\" depends on \"b\", which is not declared — depends_on names services of this file: a"}},
		{"cycle", "services:\n  a:\n    command: [x]\n    depends_on: [b]\n  b:\n    command: [x]\n    depends_on: [a]\n",
			[]string{"sandbox.yaml:2:3: services depend on each other in a cycle: a -> b -> a"}},
		{"bad health timeout", "services:\n  a:\n    command: [x]\n    health: {http: /h, timeout: soon}\n",
			[]string{"sandbox.yaml:4:33: service a: health timeout \"soon\" is not a duration"}},
		{"health path", "services:\n  a:\n    command: [x]\n    health: {http: h}\n",
			[]string{"sandbox.yaml:4:20: service a: health http \"h\" is not a path"}},
		{"image and postgres", "services:\n  db:\n    image: postgres:15\n    postgres: {}\n",
			[]string{"sandbox.yaml:2:3: service db: gives image and postgres"}},
		{"missing pipeline", "pipeline: nope.yaml\n",
			[]string{"sandbox.yaml:1:11: pipeline nope.yaml does not exist"}},
		{"bad database name", "services:\n  db:\n    postgres: {database: \"a b\"}\n",
			[]string{"sandbox.yaml:3:26: service db: postgres database \"a b\" is not a plain SQL name"}},
		{"reserved name", "services:\n  pipeline:\n    command: [x]\n",
			[]string{"sandbox.yaml:2:3: \"pipeline\" is reserved"}},
		{"bad port", "services:\n  a:\n    command: [x]\n    port: 70000\n",
			[]string{"sandbox.yaml:4:11: service a: port \"70000\" is not a port"}},
		{"not yaml", "services: [\n", []string{"sandbox.yaml:1:1: not valid YAML"}},
		{"every error at once, in file order", "nam: x\nservices:\n  db:\n    postgress: {}\n    depends_on: [x]\n",
			[]string{"sandbox.yaml:1:1: sandbox file: unknown key \"nam\"",
				"sandbox.yaml:3:3: service db: says nothing to run",
				"sandbox.yaml:3:3: service \"db\" depends on \"x\", which is not declared",
				"sandbox.yaml:4:5: service db: unknown key \"postgress\""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseString(t, c.text)
			if err == nil {
				t.Fatalf("no error for:\n%s", c.text)
			}
			rest := err.Error() // the wanted messages appear in this order
			for _, w := range c.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("error\n%v\ndoes not contain, in order,\n%s", err, w)
					continue
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	f, err := parseString(t, `
pipeline: pipeline.yaml
services:
  payments-db:
    postgres:
  api:
    command: [python3, api.py]
    env: {DSN: "${PAYMENTS_DB_URL}"}
    depends_on: [payments-db]
    health: {http: /health, timeout: 5s}
  worker:
    command: [./worker]
  nats:
    image: nats:2.10
    command: [nats-server, -p, "${PORT}"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name == "" || f.Pipeline != filepath.Join(f.Dir, "pipeline.yaml") {
		t.Errorf("name %q pipeline %q", f.Name, f.Pipeline)
	}
	db, api, worker := f.Services[0], f.Services[1], f.Services[2]
	if db.Kind != KindPostgres || db.Database != "payments_db" || db.User != "postgres" || db.Health.Timeout != DefaultHealthTimeout {
		t.Errorf("db: %+v", db)
	}
	if api.Kind != KindCommand || api.Health.HTTP != "/health" || api.Health.Timeout.String() != "5s" || api.Env["DSN"] != "${PAYMENTS_DB_URL}" {
		t.Errorf("api: %+v", api)
	}
	if !worker.Health.TCP {
		t.Errorf("a command without a health check is checked on its port: %+v", worker.Health)
	}
	if nats := f.Services[3]; nats.Kind != KindImage || nats.Image != "nats:2.10" || len(nats.Command) != 3 || !nats.Health.TCP {
		t.Errorf("an image with command: replacing its entrypoint: %+v", nats)
	}
}

func TestOrder(t *testing.T) {
	svc := func(name string, deps ...string) *Service { return &Service{Name: name, DependsOn: deps} }
	cases := []struct {
		name     string
		services []*Service
		want     string
		err      string
	}{
		{"file order without dependencies", []*Service{svc("a"), svc("b"), svc("c")}, "a b c", ""},
		{"dependency first", []*Service{svc("api", "db"), svc("db")}, "db api", ""},
		{"diamond", []*Service{svc("app", "api", "cache"), svc("api", "db"), svc("cache", "db"), svc("db")}, "db api cache app", ""},
		{"self", []*Service{svc("a", "a")}, "", "a -> a"},
		{"cycle of three", []*Service{svc("a", "b"), svc("b", "c"), svc("c", "a")}, "", "a -> b -> c -> a"},
		{"unknown", []*Service{svc("a", "zz")}, "", `depends on "zz"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Order(c.services)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			if strings.Join(names, " ") != c.want {
				t.Errorf("order %v, want %s", names, c.want)
			}
		})
	}
}

func TestVariables(t *testing.T) {
	for in, want := range map[string]string{"db": "DB", "payments-db": "PAYMENTS_DB", "mock_api2": "MOCK_API2", "a.b": "A_B"} {
		if got := VarPrefix(in); got != want {
			t.Errorf("VarPrefix(%q) = %q, want %q", in, got, want)
		}
	}
	pg := serviceVars(&Service{Name: "payments-db", Kind: KindPostgres, Database: "payments", User: "postgres"}, 5433)
	want := "PAYMENTS_DB_HOST=127.0.0.1 PAYMENTS_DB_PORT=5433 PAYMENTS_DB_URL=postgres://postgres@127.0.0.1:5433/payments?sslmode=disable PAYMENTS_DB_DATABASE=payments PAYMENTS_DB_USER=postgres"
	if got := joinVars(pg); got != want {
		t.Errorf("postgres vars\n%s\nwant\n%s", got, want)
	}
	mock := serviceVars(&Service{Name: "mock", Kind: KindCommand}, 8080)
	if got, want := joinVars(mock), "MOCK_HOST=127.0.0.1 MOCK_PORT=8080 MOCK_URL=http://127.0.0.1:8080"; got != want {
		t.Errorf("command vars %s, want %s", got, want)
	}
}

func joinVars(vs []Var) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.Name+"="+v.Value)
	}
	return strings.Join(s, " ")
}

func TestLastLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"}, {"a\nb\nc", 2, "b\nc"}, {"a\nb\n", 5, "a\nb\n"}, {"a\n", 0, ""}, {"", 3, ""},
	} {
		if got := string(lastLines([]byte(c.in), c.n)); got != c.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
