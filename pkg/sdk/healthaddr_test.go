package sdk

import "testing"

func TestHealthAddr(t *testing.T) {
	for _, tc := range []struct{ health, port, want string }{
		{"9000", "127.0.0.1:50051", "127.0.0.1:9000"},
		{"9000", "[::1]:50051", "[::1]:9000"},
		{"9000", "50051", ":9000"},
		{"9000", ":50051", ":9000"},
		{"9000", "", ":9000"},
		{"0.0.0.0:9000", "127.0.0.1:50051", "0.0.0.0:9000"},
		{"127.0.0.2:9000", "", "127.0.0.2:9000"},
	} {
		if got := healthAddr(tc.health, tc.port); got != tc.want {
			t.Errorf("healthAddr(%q, %q) = %q, want %q", tc.health, tc.port, got, tc.want)
		}
	}
}
