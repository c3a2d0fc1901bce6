"""Vendor-specific sources: one module per ACD or CRM product, on its documented API or schema."""
