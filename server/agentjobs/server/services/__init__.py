"""Use cases: starting jobs, the payment monitor, the job runner, earnings."""
