"""Code shared by authgate's services: the verifier⇄issuer contract and settings loading.

The verifier imports only from here (DESIGN.md: it imports nothing from issuer, gateway
or plugins), so whatever both sides must agree on lives in this package.
"""
