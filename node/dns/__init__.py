"""DNS for the service catalog: every agent answers for the zone `shoal.`
(node.dns.zone builds the records, node.dns.answer answers one query, pure;
node.dns.server serves UDP and TCP on trio; node.dns.forward passes other
zones to the operator's resolvers)."""
