"""The knowledge base (知识库): articles for agents, reviewed before publishing."""
