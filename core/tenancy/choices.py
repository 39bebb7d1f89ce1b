from django.db import models


class Role(models.TextChoices):
    ORG_ADMIN = "org_admin", "Organization admin"
    CLINICIAN = "clinician", "Clinician"
    CREDIT_ANALYST = "credit_analyst", "Credit analyst"
    MERCHANT = "merchant", "Merchant"
    TRAFFIC_OPERATOR = "traffic_operator", "Traffic operator"


class Scope(models.TextChoices):
    MEDICAL = "medical", "Medical"
    FINANCE = "finance", "Finance"
    RETAIL = "retail", "Retail"
    TRAFFIC = "traffic", "Traffic"
    ML = "ml", "Model registry"


# What a signed-in portal user may do through the API, by role. API keys carry explicit scopes.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.ORG_ADMIN: frozenset(Scope.values),
    Role.CLINICIAN: frozenset({Scope.MEDICAL}),
    Role.CREDIT_ANALYST: frozenset({Scope.FINANCE}),
    Role.MERCHANT: frozenset({Scope.RETAIL}),
    Role.TRAFFIC_OPERATOR: frozenset({Scope.TRAFFIC}),
}
