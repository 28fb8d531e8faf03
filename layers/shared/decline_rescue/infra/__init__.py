"""AWS and the network: the orders store (DynamoDB), queues (SQS), the event bus
(EventBridge), secrets, HTTP. The only modules that talk to botocore or httpx."""
