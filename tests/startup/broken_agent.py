"""An agent module that fails while it is imported
(AGENTJOBS_AGENT=tests.startup.broken_agent:agent)."""

raise RuntimeError("the agent's own module is broken")
