"""Tools from typed Python functions, permission policies, a tool-using agent, SQL and MCP."""
