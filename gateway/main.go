// Command gateway serves the services' public RPCs as HTTP/JSON, from the protos' HTTP
// mapping (google.api.http), and their OpenAPI document at /openapi.json.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	authpb "micro/gateway/gen/auth/v1"
	paymentpb "micro/gateway/gen/payment/v1"
	userpb "micro/gateway/gen/user/v1"
)

type config struct {
	listen          string
	usersvc         string
	paymentsvc      string
	authsvc         string
	openapi         string
	swaggerUI       string
	defaultDeadline time.Duration
	maxBody         int64
	corsOrigins     string
	shutdownGrace   time.Duration
}

func env(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", env("GATEWAY_LISTEN", "127.0.0.1:8080"), "host:port to serve HTTP on (GATEWAY_LISTEN)")
	fs.StringVar(&c.usersvc, "usersvc", env("USERSVC_ADDR", "localhost:50051"), "usersvc's gRPC address (USERSVC_ADDR)")
	fs.StringVar(&c.paymentsvc, "paymentsvc", env("PAYMENTSVC_ADDR", "localhost:50052"), "paymentsvc's gRPC address (PAYMENTSVC_ADDR)")
	fs.StringVar(&c.authsvc, "authsvc", env("AUTHSVC_ADDR", "localhost:50053"), "authsvc's gRPC address (AUTHSVC_ADDR)")
	fs.StringVar(&c.openapi, "openapi", env("GATEWAY_OPENAPI", ""), "the OpenAPI document to serve at /openapi.json (GATEWAY_OPENAPI)")
	fs.StringVar(&c.swaggerUI, "swagger-ui", env("GATEWAY_SWAGGER_UI", ""), "a directory with the Swagger UI page (//:swagger_ui) to serve at /docs/; empty: none (GATEWAY_SWAGGER_UI)")
	fs.DurationVar(&c.defaultDeadline, "default-deadline", 5*time.Second, "deadline of a call whose request carries no Grpc-Timeout header")
	fs.Int64Var(&c.maxBody, "max-body-bytes", 64<<10, "largest request body accepted (413 beyond)")
	fs.StringVar(&c.corsOrigins, "cors-origins", env("GATEWAY_CORS_ORIGINS", ""), "comma-separated origins a browser may call from; empty: none")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long calls in flight may finish after SIGTERM")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.openapi == "" {
		return c, errors.New("--openapi (GATEWAY_OPENAPI) is required: the document to serve at /openapi.json")
	}
	return c, nil
}

// register binds each service's HTTP rules to the mux, over one connection per service.
func register(ctx context.Context, mux *runtime.ServeMux, c config) ([]*grpc.ClientConn, error) {
	services := []struct {
		addr string
		bind func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
	}{
		{c.usersvc, userpb.RegisterUserServiceHandler},
		{c.paymentsvc, paymentpb.RegisterPaymentServiceHandler},
		{c.authsvc, authpb.RegisterAuthServiceHandler},
	}
	var conns []*grpc.ClientConn
	for _, s := range services {
		conn, err := grpc.NewClient(s.addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// The services' Kubernetes Services have one address per pod (headless), so
			// each call may go to another replica.
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
		if err != nil {
			return conns, fmt.Errorf("dial %s: %w", s.addr, err)
		}
		conns = append(conns, conn)
		if err := s.bind(ctx, mux, conn); err != nil {
			return conns, err
		}
	}
	return conns, nil
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	document, err := os.ReadFile(c.openapi)
	if err != nil {
		return fmt.Errorf("read the OpenAPI document: %w", err)
	}
	runtime.DefaultContextTimeout = c.defaultDeadline
	mux := runtime.NewServeMux(
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithMetadata(forwardRequestID),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
	)
	conns, err := register(ctx, mux, c)
	defer func() {
		for _, conn := range conns {
			_ = conn.Close()
		}
	}()
	if err != nil {
		return err
	}
	health := grpc_health_v1.NewHealthClient(conns[0])
	root := http.NewServeMux()
	root.Handle("/v1/", mux)
	// Exact paths without method patterns: those depend on the GODEBUG default of the module's
	// Go version, which the offline GOPATH build does not have.
	root.HandleFunc("/openapi.json", getOnly(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(document)
	}))
	if c.swaggerUI != "" {
		root.Handle("/docs/", getOnly(http.StripPrefix("/docs/", http.FileServer(http.Dir(c.swaggerUI))).ServeHTTP))
	}
	root.HandleFunc("/healthz", getOnly(livez))
	root.HandleFunc("/readyz", getOnly(readyz(health)))
	handler := withRequestID(withCORS(c.corsOrigins, withBodyLimit(c.maxBody, withAccessLog(log, root))))

	listener, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Info("gateway listening", "address", listener.Addr().String())
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", c.shutdownGrace.String())
	drain, cancel := context.WithTimeout(context.Background(), c.shutdownGrace)
	defer cancel()
	return server.Shutdown(drain)
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	c, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("gateway failed", "error", err.Error())
		os.Exit(1)
	}
}
