// TLS and SASL for the sarama drivers (shared: saramagroup/security.go links here).
//
//	-tls-ca FILE            TLS with this CA (PEM); without it, plaintext
//	-sasl-mechanism M       PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL on)
//	-sasl-user U -sasl-password P
//
// sarama 1.22 speaks SASL PLAIN itself (SaslHandshake v1 + SaslAuthenticate from
// config.Version 1.0) but ships no SCRAM: as its own example does, a
// SCRAMClientGeneratorFunc supplies one, here xdg-go/scram (Debian
// golang-github-xdg-go-scram-dev).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io/ioutil"
	"os"

	"github.com/Shopify/sarama"
	"github.com/xdg-go/scram"
)

type securityFlags struct {
	caFile, mechanism, user, password *string
}

func addSecurityFlags(fs *flag.FlagSet) *securityFlags {
	return &securityFlags{
		caFile:    fs.String("tls-ca", "", "CA certificate (PEM): TLS on"),
		mechanism: fs.String("sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512: SASL on"),
		user:      fs.String("sasl-user", "", "SASL user"),
		password:  fs.String("sasl-password", "", "SASL password"),
	}
}

func (s *securityFlags) apply(c *sarama.Config) {
	if *s.caFile != "" {
		pem, err := ioutil.ReadFile(*s.caFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tls-ca: %v\n", err)
			os.Exit(2)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(os.Stderr, "tls-ca: no certificate in %s\n", *s.caFile)
			os.Exit(2)
		}
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = &tls.Config{RootCAs: pool}
	}
	if *s.mechanism == "" {
		return
	}
	c.Net.SASL.Enable = true
	c.Net.SASL.Handshake = true
	c.Net.SASL.User = *s.user
	c.Net.SASL.Password = *s.password
	c.Net.SASL.Mechanism = sarama.SASLMechanism(*s.mechanism)
	switch *s.mechanism {
	case sarama.SASLTypePlaintext:
	case sarama.SASLTypeSCRAMSHA256:
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case sarama.SASLTypeSCRAMSHA512:
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	default:
		fmt.Fprintf(os.Stderr, "sasl-mechanism %s: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512\n", *s.mechanism)
		os.Exit(2)
	}
}

// scramClient is sarama's SCRAMClient over an xdg-go/scram conversation.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (x *scramClient) Begin(user, password, authzID string) error {
	client, err := x.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	x.conv = client.NewConversation()
	return nil
}

func (x *scramClient) Step(challenge string) (string, error) {
	return x.conv.Step(challenge)
}

func (x *scramClient) Done() bool {
	return x.conv.Done()
}
