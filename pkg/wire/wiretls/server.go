package wiretls

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenServerOptions returns the gRPC server options that install
// TokenUnaryInterceptor and TokenStreamInterceptor (chained, so other
// interceptors still run). Methods listed in exempt (full names such as
// "/grpc.health.v1.Health/Check") are let through without a token.
func TokenServerOptions(token string, exempt ...string) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(TokenUnaryInterceptor(token, exempt...)),
		grpc.ChainStreamInterceptor(TokenStreamInterceptor(token, exempt...)),
	}
}

// TokenUnaryInterceptor refuses unary calls whose metadata lacks
// `authorization: Bearer <token>` with codes.Unauthenticated.
func TokenUnaryInterceptor(token string, exempt ...string) grpc.UnaryServerInterceptor {
	check := tokenChecker(token, exempt)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// TokenStreamInterceptor is TokenUnaryInterceptor for streaming calls.
func TokenStreamInterceptor(token string, exempt ...string) grpc.StreamServerInterceptor {
	check := tokenChecker(token, exempt)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// tokenChecker compares SHA-256 digests with subtle.ConstantTimeCompare, so
// neither the content nor the length of the expected token leaks through
// timing.
func tokenChecker(token string, exempt []string) func(ctx context.Context, method string) error {
	want := sha256.Sum256([]byte(token))
	skip := make(map[string]bool, len(exempt))
	for _, m := range exempt {
		skip[m] = true
	}
	return func(ctx context.Context, method string) error {
		if skip[method] {
			return nil
		}
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get(AuthHeader)
		if len(vals) != 1 {
			return status.Error(codes.Unauthenticated, "missing bearer token")
		}
		scheme, got, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "bearer") {
			return status.Error(codes.Unauthenticated, "authorization must be `Bearer <token>`")
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return status.Error(codes.Unauthenticated, "invalid bearer token")
		}
		return nil
	}
}
