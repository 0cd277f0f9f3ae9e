"""authgate verifier: answers nginx `auth_request` subrequests from Redis."""
